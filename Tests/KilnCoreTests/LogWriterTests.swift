import Foundation
import KilnCore
import Testing

private let fixedDate = Date(timeIntervalSince1970: 1_790_000_000)

@Suite struct LogWriterTests {
    @Test func sectionsUseGitLabsExactEscapes() {
        let sink = MemorySink()
        let log = LogWriter(sink: sink, style: .gitlab, secrets: SecretMask(), clock: .fixed(fixedDate))
        log.section("packer build", title: "Packer build", collapsed: true) {
            log.line("inside")
        }
        #expect(
            sink.text == """
                \u{1B}[0Ksection_start:1790000000:packer_build[collapsed=true]\r\u{1B}[0KPacker build
                inside
                \u{1B}[0Ksection_end:1790000000:packer_build\r\u{1B}[0K

                """)
    }

    @Test func sectionClosesWhenBodyThrows() {
        let sink = MemorySink()
        let log = LogWriter(sink: sink, style: .gitlab, secrets: SecretMask(), clock: .fixed(fixedDate))
        #expect(throws: KilnError.self) {
            try log.section("s", title: "S") { throw KilnError.internalError("boom") }
        }
        #expect(sink.text.hasSuffix("\u{1B}[0Ksection_end:1790000000:s\r\u{1B}[0K\n"))
    }

    @Test func plainStyleForPeople() {
        let sink = MemorySink()
        let log = LogWriter(sink: sink, style: .plain, secrets: SecretMask(), clock: .fixed(fixedDate))
        log.section("build", title: "Build") {}
        #expect(sink.text == "==> Build\n<== Build (0.0s)\n")
    }

    @Test func linesAreMasked() {
        let sink = MemorySink()
        let log = LogWriter(sink: sink, style: .plain, secrets: SecretMask(["glcbt-s3cr3t-token"]))
        log.line("cloning https://gitlab-ci-token:glcbt-s3cr3t-token@example.test/p.git")
        log.error("token glcbt-s3cr3t-token refused")
        #expect(!sink.text.contains("s3cr3t"))
        #expect(sink.text.contains("gitlab-ci-token:[MASKED]@"))
    }

    @Test func percentEncodedFormIsMaskedToo() {
        let mask = SecretMask(["a+b/c=d"])
        #expect(mask.mask("x a%2Bb%2Fc%3Dd y") == "x [MASKED] y")
        #expect(mask.mask("x a+b/c=d y") == "x [MASKED] y")
    }

    /// Issue 13, item 18: a secret inside base64 (a Basic-auth header) is
    /// masked whatever its offset in a base64 group (the text before it
    /// 0, 1 or 2 bytes long, modulo 3), also when written in pieces.
    @Test(arguments: ["", "u", "us", "gitlab-ci-token:"])
    func base64FormsAreMasked(prefix: String) {
        let secret = "glcbt-64_Zx9vQ2mN8pL4rT6wY1aB"
        let encoded = Data((prefix + secret).utf8).base64EncodedString()
        let middle = secretsOwnGroups(of: encoded, prefixLength: prefix.utf8.count, secretLength: secret.utf8.count)
        let line = Array("Authorization: Basic \(encoded)\n".utf8)
        let mask = SecretMask([secret])
        let whole = mask.mask(String(decoding: line, as: UTF8.self))
        #expect(whole.contains("Authorization: Basic ") && whole.contains(SecretMask.replacement), "\(whole)")
        #expect(!whole.contains(middle), "\(whole)")
        for cut in 0...line.count {
            let sink = MemorySink()
            var stream = LogWriter(sink: sink, style: .plain, secrets: mask).stream()
            stream.write(line[..<cut])
            stream.write(line[cut...])
            stream.finish()
            #expect(sink.text == whole, "cut at \(cut)")
        }
    }

    /// A real child prints the job token as GitLab's Basic-auth header does;
    /// the log shows none of it, raw or encoded.
    @Test func aChildPrintingTheTokenInBase64IsMasked() throws {
        let token = "glcbt-64_Zx9vQ2mN8pL4rT6wY1aB"
        let sink = MemorySink()
        let runner = ProcessRunner(log: LogWriter(sink: sink, style: .plain, secrets: SecretMask([token])))
        let command = Command(
            "/bin/sh",
            ["-c", #"printf 'Authorization: Basic %s\n' "$(printf 'gitlab-ci-token:%s' "$TOKEN" | base64 -w0)""#],
            environment: ["PATH": "/usr/bin:/bin", "TOKEN": token])
        let result = try runner.run(command)
        #expect(result.termination.succeeded)
        let encoded = Data("gitlab-ci-token:\(token)".utf8).base64EncodedString()
        let middle = secretsOwnGroups(of: encoded, prefixLength: 16, secretLength: token.utf8.count)
        #expect(sink.text.contains("Authorization: Basic "), "\(sink.text)")
        #expect(!sink.text.contains(middle), "\(sink.text)")
        #expect(!result.tail.contains(middle), "\(result.tail)")
    }

    /// The base64 groups (4 characters for 3 bytes) made of the secret's
    /// bytes only: the part of the encoding that no surrounding text changes.
    private func secretsOwnGroups(of encoded: String, prefixLength: Int, secretLength: Int) -> String {
        let first = (prefixLength + 2) / 3
        let end = (prefixLength + secretLength) / 3
        return String(Array(encoded)[(first * 4)..<(end * 4)])
    }

    @Test func secretLearntLaterIsMasked() {
        let mask = SecretMask()
        #expect(mask.mask("session FQoGZXIvYXdzEBY") == "session FQoGZXIvYXdzEBY")
        mask.add("FQoGZXIvYXdzEBY")
        #expect(mask.mask("session FQoGZXIvYXdzEBY") == "session [MASKED]")
    }

    /// Every way of cutting the text in two, and in three, must mask it.
    @Test func secretSplitAcrossWritesIsMasked() {
        let secret = "wJalrXUtnFEMI/K7MDENG"
        let text = Array("key=\(secret); again \(secret)!\n".utf8)
        for cut in 0...text.count {
            for second in cut...text.count {
                let sink = MemorySink()
                let log = LogWriter(sink: sink, style: .plain, secrets: SecretMask([secret]))
                var stream = log.stream()
                stream.write(text[0..<cut])
                stream.write(text[cut..<second])
                stream.write(text[second...])
                stream.finish()
                #expect(sink.text == "key=[MASKED]; again [MASKED]!\n", "cut at \(cut), \(second)")
            }
        }
    }

    @Test func heldBackPrefixThatIsNoSecretIsPrintedAtTheEnd() {
        let sink = MemorySink()
        let log = LogWriter(sink: sink, style: .plain, secrets: SecretMask(["ABAB"]))
        var stream = log.stream()
        stream.write(Array("xxABA".utf8))
        #expect(sink.text == "xx")
        stream.write(Array("C".utf8))
        stream.finish()
        #expect(sink.text == "xxABAC")
    }

    /// Overlapping candidates ("ABA" in "ABABA"): a stream cut anywhere
    /// prints what masking the whole text at once prints.
    @Test func streamedMaskingEqualsWholeTextMasking() {
        let mask = SecretMask(["ABA", "BAB-long"])
        let text = Array("zABABAxBAB-longABA".utf8)
        let whole = mask.mask(String(decoding: text, as: UTF8.self))
        #expect(whole == "z[MASKED]BAx[MASKED][MASKED]")
        for cut in 0...text.count {
            let sink = MemorySink()
            var stream = LogWriter(sink: sink, style: .plain, secrets: mask).stream()
            stream.write(text[..<cut])
            stream.write(text[cut...])
            stream.finish()
            #expect(sink.text == whole, "cut at \(cut)")
        }
    }

    @Test func jobContextKnowsItsSecrets() throws {
        let folder = NSTemporaryDirectory() + "kiln-oidc-\(UUID().uuidString)"
        try "eyJ-web-identity\n".write(toFile: folder, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let job = JobContext(environment: [
            "CI_JOB_TOKEN": "job-token-1",
            "AWS_SECRET_ACCESS_KEY": "aws-secret",
            "AWS_SESSION_TOKEN": "aws-session",
            "KILN_OIDC_TOKEN_VARIABLE": "GITLAB_OIDC",
            "GITLAB_OIDC": "eyJ-oidc",
            "AWS_WEB_IDENTITY_TOKEN_FILE": folder,
            "CI_REPOSITORY_URL": "https://gitlab-ci-token:url-token@gitlab.example/g/p.git",
            "GITLAB_CI": "true",
        ])
        #expect(
            Set(job.secretValues) == [
                "job-token-1", "aws-secret", "aws-session", "eyJ-oidc", "eyJ-web-identity", "url-token",
            ])
        let sink = MemorySink()
        let log = job.makeLog(sink: sink)
        #expect(log.style == .gitlab)
        log.line("job-token-1 aws-secret aws-session eyJ-oidc eyJ-web-identity url-token")
        #expect(sink.text == "[MASKED] [MASKED] [MASKED] [MASKED] [MASKED] [MASKED]\n")
    }

    @Test func sectionNamesKeepToGitLabsCharacters() {
        #expect(LogWriter.sectionName("build: make test") == "build__make_test")
        #expect(LogWriter.sectionName("a.b-c_d") == "a.b-c_d")
    }
}

@Suite struct DigestTests {
    @Test func sha256KnownAnswers() throws {
        #expect(
            SHA256Digest.hex(of: Data("abc".utf8)) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        )
        #expect(SHA256Digest.hex(of: Data()) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        let path = NSTemporaryDirectory() + "kiln-digest-\(UUID().uuidString)"
        try Data(repeating: UInt8(ascii: "a"), count: 1_000_000).write(to: URL(fileURLWithPath: path))
        defer { try? FileManager.default.removeItem(atPath: path) }
        #expect(
            try SHA256Digest.hex(ofFileAt: path) == "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
    }
}
