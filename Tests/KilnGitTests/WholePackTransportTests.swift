import Testing

@testable import KilnGit

/// The upload-pack request's first pkt-line without `thin-pack` (gitprotocol-pack(5), "first-want";
/// gitprotocol-capabilities(5), "thin-pack"), the rest of the request as it was.
@Suite struct WholePackTransportTests {
    let oid = "d33ac0cfb6ec6ff96cc21445d0b8ee6264f38d62"

    func rewritten(_ request: String) -> String? {
        Array(request.utf8).withUnsafeBytes { WholePackTransport.withoutThinPack($0) }.map {
            String(decoding: $0, as: UTF8.self)
        }
    }

    @Test func dropsThinPackFromTheFirstWantAndFixesItsLength() {
        // The first line as libgit2 1.8 writes it (smart_pkt.c, buffer_want_with_caps), then what follows.
        let caps = "multi_ack_detailed side-band-64k include-tag thin-pack ofs-delta shallow"
        let first = "want \(oid) \(caps)\n"
        let rest = "0032want \(oid)\n0034shallow \(oid)\n00000032have \(oid)\n0009done\n"
        let request = String(format: "%04x", first.utf8.count + 4) + first + rest
        let whole = "want \(oid) multi_ack_detailed side-band-64k include-tag ofs-delta shallow\n"
        #expect(rewritten(request) == String(format: "%04x", whole.utf8.count + 4) + whole + rest)
        #expect(rewritten(request).map { $0.hasPrefix("0071want ") } == true)
    }

    @Test func leavesARequestWithoutThinPackAlone() {
        let first = "want \(oid) ofs-delta\n"
        #expect(rewritten(String(format: "%04x", first.utf8.count + 4) + first + "0000") == nil)
        // Not a want line, a length longer than the request, too short to hold a length.
        #expect(rewritten("0032have \(oid)\n") == nil)
        #expect(rewritten("00ffwant \(oid) thin-pack\n") == nil)
        #expect(rewritten("00") == nil)
        // The object id is not a capability, even when it reads like one.
        #expect(rewritten("0012want thin-pack\n") == nil)
    }
}
