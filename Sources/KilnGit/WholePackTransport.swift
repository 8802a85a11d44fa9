import CLibGit2
import Foundation

/// libgit2's smart HTTP transport, asking upload-pack for a whole pack rather than a thin one.
///
/// A thin pack holds deltas against objects the client already has (gitprotocol-capabilities(5),
/// "thin-pack": the receiving end must "thicken" it by adding the missing bases). libgit2's indexer
/// (src/libgit2/indexer.c, `resolve_deltas` and `fix_thin_pack`, 1.5 to 1.9) adds one missing base per
/// pass over every delta still unresolved: quadratic. A warm fetch of 100 commits into the benchmark's
/// cache received a 1,883-object pack with 791 bases missing, and spent 3 to 4 s resolving it where git's
/// index-pack takes milliseconds (libgit2 pull request 7268, "O(N^2) to O(N)", is open). libgit2 asks for
/// `thin-pack` whenever the server offers it and has no option to refrain, so this transport takes the
/// capability out of the request: the server then deltifies only against objects inside the pack, which
/// costs more bytes (about 1.5x on a warm fetch; nothing on a clone, which has no bases to be thin against)
/// and indexes in one pass.
///
/// Registered for the http and https schemes (git2/sys/transport.h, `git_transport_register`: consulted
/// before libgit2's own transports): libgit2's smart transport over its own HTTP subtransport
/// (`git_smart_subtransport_http`), with the upload-pack request's stream wrapped. The rest of the
/// transfer (credentials, proxies, Kiln's socket stream underneath) is libgit2's.
enum WholePackTransport {
    /// libgit2 keeps the pointer: one definition for the process (rpc: HTTP is stateless).
    nonisolated(unsafe) private static let definition: UnsafeMutablePointer<git_smart_subtransport_definition> = {
        let definition = UnsafeMutablePointer<git_smart_subtransport_definition>.allocate(capacity: 1)
        definition.initialize(
            to: git_smart_subtransport_definition(
                callback: { out, owner, _ in WholePackTransport.subtransport(out, owner) }, rpc: 1, param: nil))
        return definition
    }()

    static func register() {
        for scheme in ["http", "https"] {
            _ = git_transport_register(scheme, git_transport_smart, UnsafeMutableRawPointer(definition))
        }
    }

    // MARK: the upload-pack request

    /// The first pkt-line of an upload-pack request without the `thin-pack` capability, or nil when it
    /// does not ask for one. gitprotocol-pack(5): the request starts with `first-want = PKT-LINE("want" SP
    /// obj-id SP capability-list)`, a pkt-line being four hex digits of its whole length, then its data;
    /// capabilities are separated by single spaces (gitprotocol-capabilities(5)). libgit2 writes the whole
    /// request, and each round of a stateless negotiation repeats it, in one write.
    static func withoutThinPack(_ request: UnsafeRawBufferPointer) -> [UInt8]? {
        guard request.count >= 4, let length = Int(String(decoding: request.prefix(4), as: UTF8.self), radix: 16),
            length > 4, length <= request.count
        else { return nil }
        var line = Array(request[4..<length])
        let newline = line.last == UInt8(ascii: "\n")
        if newline { line.removeLast() }
        var words = line.split(separator: UInt8(ascii: " "), omittingEmptySubsequences: false).map(Array.init)
        guard words.count > 2, words[0] == Array("want".utf8) else { return nil }
        let thin = Array("thin-pack".utf8)
        guard words[2...].contains(thin) else { return nil }
        words = Array(words[..<2]) + words[2...].filter { $0 != thin }
        var rewritten = Array(words.joined(separator: [UInt8(ascii: " ")]))
        if newline { rewritten.append(UInt8(ascii: "\n")) }
        let header = Array(String(format: "%04x", rewritten.count + 4).utf8)
        return header + rewritten + Array(request[length...])
    }

    // MARK: the subtransport

    private static func of(
        _ base: UnsafeMutablePointer<git_smart_subtransport>?
    )
        -> UnsafeMutablePointer<CKiln_git_pack_subtransport>
    {
        UnsafeMutableRawPointer(base!).assumingMemoryBound(to: CKiln_git_pack_subtransport.self)
    }

    private static func of(
        _ base: UnsafeMutablePointer<git_smart_subtransport_stream>?
    )
        -> UnsafeMutablePointer<CKiln_git_pack_stream>
    {
        UnsafeMutableRawPointer(base!).assumingMemoryBound(to: CKiln_git_pack_stream.self)
    }

    private static func subtransport(
        _ out: UnsafeMutablePointer<UnsafeMutablePointer<git_smart_subtransport>?>?,
        _ owner: UnsafeMutablePointer<git_transport>?
    ) -> Int32 {
        guard let out else { return -1 }
        var http: UnsafeMutablePointer<git_smart_subtransport>?
        let created = git_smart_subtransport_http(&http, owner, nil)
        guard created == 0, let http else { return created }
        let wrapper = UnsafeMutablePointer<CKiln_git_pack_subtransport>.allocate(capacity: 1)
        wrapper.initialize(to: CKiln_git_pack_subtransport())
        wrapper.pointee.http = http
        wrapper.pointee.parent.action = { out, base, url, service in
            WholePackTransport.action(out, base, url, service)
        }
        wrapper.pointee.parent.close = { base in
            let http = WholePackTransport.of(base).pointee.http!
            return http.pointee.close(http)
        }
        wrapper.pointee.parent.free = { base in
            let wrapper = WholePackTransport.of(base)
            wrapper.pointee.http.pointee.free(wrapper.pointee.http)
            wrapper.deinitialize(count: 1)
            wrapper.deallocate()
        }
        out.pointee = UnsafeMutableRawPointer(wrapper).assumingMemoryBound(to: git_smart_subtransport.self)
        return 0
    }

    /// libgit2's stream for every service; the upload-pack request's wrapped.
    private static func action(
        _ out: UnsafeMutablePointer<UnsafeMutablePointer<git_smart_subtransport_stream>?>?,
        _ base: UnsafeMutablePointer<git_smart_subtransport>?, _ url: UnsafePointer<CChar>?,
        _ service: git_smart_service_t
    ) -> Int32 {
        guard let out else { return -1 }
        let http = of(base).pointee.http!
        var inner: UnsafeMutablePointer<git_smart_subtransport_stream>?
        let opened = http.pointee.action(&inner, http, url, service)
        guard opened == 0, let inner else { return opened }
        guard service == GIT_SERVICE_UPLOADPACK else {
            out.pointee = inner
            return 0
        }
        let stream = UnsafeMutablePointer<CKiln_git_pack_stream>.allocate(capacity: 1)
        stream.initialize(to: CKiln_git_pack_stream())
        stream.pointee.http = inner
        stream.pointee.parent.subtransport = base
        stream.pointee.parent.read = { base, buffer, size, read in
            let http = WholePackTransport.of(base).pointee.http!
            return http.pointee.read(http, buffer, size, read)
        }
        stream.pointee.parent.write = { base, buffer, length in
            let http = WholePackTransport.of(base).pointee.http!
            guard let buffer else { return http.pointee.write(http, buffer, length) }
            let request = UnsafeRawBufferPointer(start: buffer, count: length)
            guard let whole = WholePackTransport.withoutThinPack(request) else {
                return http.pointee.write(http, buffer, length)
            }
            return whole.withUnsafeBufferPointer { bytes in
                bytes.withMemoryRebound(to: CChar.self) { http.pointee.write(http, $0.baseAddress, $0.count) }
            }
        }
        stream.pointee.parent.free = { base in
            let stream = WholePackTransport.of(base)
            stream.pointee.http.pointee.free(stream.pointee.http)
            stream.deinitialize(count: 1)
            stream.deallocate()
        }
        out.pointee = UnsafeMutableRawPointer(stream).assumingMemoryBound(to: git_smart_subtransport_stream.self)
        return 0
    }
}
