import Foundation
import KilnCore
import KilnTestSupport
import Testing

private func makeRunner(
    _ sink: MemorySink, secrets: [String] = [], cancellation: Cancellation = Cancellation()
) -> ProcessRunner {
    var runner = ProcessRunner(
        log: LogWriter(sink: sink, style: .plain, secrets: SecretMask(secrets)), cancellation: cancellation)
    runner.killGrace = 2
    return runner
}

private func isAlive(_ pid: pid_t) -> Bool {
    // A zombie still answers kill(0); look at its state too.
    guard kill(pid, 0) == 0 else { return false }
    let status = (try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8)) ?? ""
    return !status.contains(") Z ")
}

private func waitFor(_ path: String, seconds: Double = 10) -> String? {
    let deadline = Date().addingTimeInterval(seconds)
    while Date() < deadline {
        if let text = try? String(contentsOfFile: path, encoding: .utf8), text.hasSuffix("\n") { return text }
        usleep(20_000)
    }
    return nil
}

@Suite struct ProcessRunnerTests {
    @Test func reportsExitCodeAndStreamsOutput() throws {
        let sink = MemorySink()
        let result = try makeRunner(sink).run(.shell("echo out; echo err >&2; exit 3"))
        #expect(result.termination == .exited(3))
        #expect(!result.termination.succeeded)
        #expect(sink.text.contains("out\n"))
        #expect(sink.text.contains("err\n"))
        #expect(!result.timedOut)
    }

    @Test func tellsSignalsFromExitCodes() throws {
        let result = try makeRunner(MemorySink()).run(.shell("kill -KILL $$"))
        #expect(result.termination == .signalled(SIGKILL))
        #expect(result.termination.description.contains("SIGKILL"))
    }

    @Test func keepsABoundedTail() throws {
        var runner = makeRunner(MemorySink())
        runner.tailLimit = 200
        let result = try runner.run(.shell("i=0; while [ $i -lt 500 ]; do echo line-$i; i=$((i+1)); done; exit 1"))
        #expect(result.tail.hasSuffix("line-499"))
        #expect(result.tail.utf8.count <= 200)
        #expect(!result.tail.contains("line-1\n"))
        #expect(result.tail.hasPrefix("line-"), "cut at a line start: \(result.tail.prefix(20))")
    }

    @Test func checkThrowsAFailureWithCommandAndTail() {
        do {
            try makeRunner(MemorySink()).check(
                .shell("echo compiling; echo 'undefined symbol' >&2; exit 2"), what: "build command",
                failure: .projectFailed)
            Issue.record("expected a failure")
        } catch let failure as ProcessFailure {
            #expect(failure.exitStatus == .projectFailed)
            #expect(KilnExit.for(failure) == 2)
            #expect(failure.description.contains("build command failed with exit code 2"))
            #expect(failure.description.contains("/bin/sh -c"))
            #expect(failure.description.contains("undefined symbol"))
        } catch {
            Issue.record("unexpected \(error)")
        }
    }

    @Test func capturesStandardOutputWithoutLoggingIt() throws {
        let sink = MemorySink()
        let result = try makeRunner(sink).run(.shell("printf '{\"a\":1}'; echo note >&2"), output: .capture)
        #expect(String(decoding: result.standardOutput, as: UTF8.self) == "{\"a\":1}")
        #expect(!sink.text.contains("{\"a\":1}"))
        #expect(sink.text.contains("note"))
    }

    /// A tool's machine-readable output (Packer's): kept whole for the
    /// caller, shown as rendered lines, lines split across writes put
    /// together, the last line without a new line rendered too, secrets masked.
    @Test func rendersStandardOutputLineByLineAndKeepsItWhole() throws {
        let sink = MemorySink()
        let result = try makeRunner(sink, secrets: ["tok-123456"]).run(
            .shell("printf '1,ui,say,hel'; sleep 0.2; printf 'lo tok-123456\\n1,artifact,x\\n'; printf 'plain end'"),
            output: .rendered { line in
                line.hasPrefix("1,ui,say,") ? String(line.dropFirst(9)) : line.hasPrefix("1,") ? nil : "| " + line
            })
        #expect(
            String(decoding: result.standardOutput, as: UTF8.self)
                == "1,ui,say,hello tok-123456\n1,artifact,x\nplain end")
        #expect(sink.text.contains("hello [MASKED]\n"))
        #expect(!sink.text.contains("ui,say") && !sink.text.contains("artifact,x"))
        #expect(sink.text.contains("| plain end\n"))
        #expect(result.tail == "hello [MASKED]\n| plain end")
    }

    @Test func masksSecretsInChildOutputAndTail() throws {
        let sink = MemorySink()
        // The secret is printed in two pieces by two writes of the child.
        let result = try makeRunner(sink, secrets: ["tok-123456"]).run(
            .shell("printf 'using tok-12'; sleep 0.2; printf '3456 now\\n'; exit 1"))
        #expect(!sink.text.contains("tok-123456"))
        #expect(sink.text.contains("using [MASKED] now"))
        #expect(result.tail.contains("[MASKED]"))
        #expect(!result.tail.contains("123456"))
    }

    @Test func environmentAndFolderAreTheChilds() throws {
        let folder = TemporaryDirectory()
        let result = try makeRunner(MemorySink()).run(
            Command(
                "/bin/sh", ["-c", "echo \"$ONLY_VAR:$(pwd)\""],
                environment: ["ONLY_VAR": "v", "PATH": "/usr/bin:/bin"], workingDirectory: folder.path),
            output: .capture)
        let resolved = URL(fileURLWithPath: folder.path).resolvingSymlinksInPath().path
        #expect(String(decoding: result.standardOutput, as: UTF8.self) == "v:\(resolved)\n")
    }

    @Test func missingProgramIsAConfigurationError() {
        #expect(throws: KilnError.self) {
            _ = try makeRunner(MemorySink()).run(
                Command("kiln-no-such-program", environment: ["PATH": "/usr/bin:/bin"]))
        }
    }

    @Test func timeoutStopsTheWholeProcessGroupIncludingAGrandchild() throws {
        let folder = TemporaryDirectory()
        let pidFile = folder.file("grandchild.pid")
        // The shell starts a grandchild that ignores nothing and sleeps long.
        let started = Date()
        let result = try makeRunner(MemorySink()).run(.shell("sleep 300 & echo $! > '\(pidFile)'; wait"), timeout: 1)
        #expect(result.timedOut)
        #expect(Date().timeIntervalSince(started) < 60)
        let grandchild = try #require(
            pid_t(
                (try String(contentsOfFile: pidFile, encoding: .utf8)).trimmingCharacters(in: .whitespacesAndNewlines)))
        let deadline = Date().addingTimeInterval(5)
        while isAlive(grandchild) && Date() < deadline { usleep(20_000) }
        #expect(!isAlive(grandchild), "grandchild \(grandchild) still running")
    }

    @Test func aChildIgnoringSIGTERMIsKilledAfterTheGrace() throws {
        let result = try makeRunner(MemorySink()).run(
            .shell("trap '' TERM; while true; do sleep 0.1; done"), timeout: 0.5)
        #expect(result.timedOut)
        #expect(result.termination == .signalled(SIGKILL))
    }

    @Test func cancellationIsForwardedToTheChildsGroup() throws {
        let folder = TemporaryDirectory()
        let marker = folder.file("got-term")
        let ready = folder.file("ready")
        let cancellation = Cancellation()
        let runner = makeRunner(MemorySink(), cancellation: cancellation)
        let script =
            "trap 'echo term > \"\(marker)\"; exit 7' TERM; echo up > '\(ready)'; while true; do sleep 0.1; done"
        DispatchQueue.global().async {
            _ = waitFor(ready)
            cancellation.cancel(signal: SIGTERM)
        }
        do {
            _ = try runner.run(.shell(script))
            Issue.record("expected CancelledBySignal")
        } catch let cancelled as CancelledBySignal {
            #expect(cancelled.signal == SIGTERM)
            #expect(KilnExit.for(cancelled) == 143)
        }
        #expect(waitFor(marker, seconds: 1) == "term\n")
    }

    @Test func forwardedSignalCanBeTranslated() throws {
        // Packer wants SIGINT where GitLab sends SIGTERM.
        let folder = TemporaryDirectory()
        let marker = folder.file("got")
        let ready = folder.file("ready")
        let cancellation = Cancellation()
        let runner = makeRunner(MemorySink(), cancellation: cancellation)
        let script =
            """
            trap 'echo int > \"\(marker)\"; exit 0' INT; \
            trap 'echo term > \"\(marker)\"; exit 0' TERM; echo up > '\(ready)'; while true; do sleep 0.1; done
            """
        DispatchQueue.global().async {
            _ = waitFor(ready)
            cancellation.cancel(signal: SIGTERM)
        }
        #expect(throws: CancelledBySignal.self) {
            _ = try runner.run(.shell(script), forwarding: { _ in SIGINT })
        }
        #expect(waitFor(marker, seconds: 1) == "int\n")
    }

    @Test func exitCodesFollowTheDesign() {
        #expect(KilnExit.for(KilnError.badConfiguration("x")) == 78)
        #expect(KilnExit.for(KilnError.usage("x")) == 64)
        #expect(KilnExit.for(CancelledBySignal(signal: SIGINT)) == 130)
        struct Unknown: Error {}
        #expect(KilnExit.for(Unknown()) == 1)
    }
}
