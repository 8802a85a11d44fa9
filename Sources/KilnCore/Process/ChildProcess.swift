import CKilnLinux
import Foundation
import Synchronization

/// A running child process, leader of its own process group, so that a
/// cancellation or a timeout reaches everything it started.
public final class ChildProcess: Sendable {
    public enum Input: Sendable { case null, pipe, inherit }
    public enum Output: Sendable { case null, pipe, inherit }

    public let pid: pid_t
    public let command: Command
    /// Our ends of the pipes asked for; the caller reads and closes them.
    public let standardInput: Int32?
    public let standardOutput: Int32?
    public let standardError: Int32?

    /// How it ended, once `waitpid` has said (the pid is reaped only once).
    private let termination = Mutex<Termination?>(nil)

    private init(pid: pid_t, command: Command, stdin: Int32?, stdout: Int32?, stderr: Int32?) {
        self.pid = pid
        self.command = command
        self.standardInput = stdin
        self.standardOutput = stdout
        self.standardError = stderr
    }

    public static func spawn(
        _ command: Command, stdin: Input = .null, stdout: Output = .pipe, stderr: Output = .pipe
    ) throws -> ChildProcess {
        let environment = command.environment ?? ProcessInfo.processInfo.environment
        guard let executable = command.resolvedExecutable(path: environment["PATH"]) else {
            throw KilnError.badConfiguration(
                "\(command.executable): command not found in PATH (\(environment["PATH"] ?? "unset"))")
        }
        if let folder = command.workingDirectory {
            var isFolder: ObjCBool = false
            guard FileManager.default.fileExists(atPath: folder, isDirectory: &isFolder), isFolder.boolValue else {
                throw KilnError.badConfiguration("\(folder): no such folder to run \(command.executable) in")
            }
        }

        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }

        // Pipes are close-on-exec: dup2 gives the child its copy, and no
        // other child spawned concurrently inherits them.
        var ourEnds: [Int32?] = [nil, nil, nil]
        var theirEnds: [Int32] = []
        defer { theirEnds.forEach { close($0) } }
        func cleanUpOurEnds() { ourEnds.compactMap { $0 }.forEach { close($0) } }

        let devNull = "/dev/null"
        let plans: [(fd: Int32, pipe: Bool, inherit: Bool, readable: Bool)] = [
            (0, stdin == .pipe, stdin == .inherit, true),
            (1, stdout == .pipe, stdout == .inherit, false),
            (2, stderr == .pipe, stderr == .inherit, false),
        ]
        for plan in plans {
            if plan.inherit { continue }
            if plan.pipe {
                var fds: [Int32] = [0, 0]
                guard CKilnLinux_pipe2(&fds, O_CLOEXEC) == 0 else {
                    cleanUpOurEnds()
                    throw SystemCallError("create a pipe for \(command.executable)", errno: errno)
                }
                // fds[0] reads, fds[1] writes: the child reads its stdin.
                let (child, ours) = plan.readable ? (fds[0], fds[1]) : (fds[1], fds[0])
                theirEnds.append(child)
                ourEnds[Int(plan.fd)] = ours
                posix_spawn_file_actions_adddup2(&actions, child, plan.fd)
            } else {
                posix_spawn_file_actions_addopen(&actions, plan.fd, devNull, plan.readable ? O_RDONLY : O_WRONLY, 0)
            }
        }
        if let folder = command.workingDirectory {
            _ = CKilnLinux_posix_spawn_file_actions_addchdir_np(&actions, folder)
        }

        // Own process group (so signals reach grandchildren too); default
        // dispositions for the signals Kiln itself catches or ignores, and
        // an empty signal mask, so the child reacts to SIGTERM normally.
        posix_spawnattr_setpgroup(&attributes, 0)
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for number in [SIGTERM, SIGINT, SIGPIPE, SIGHUP] { sigaddset(&defaults, number) }
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        var mask = sigset_t()
        sigemptyset(&mask)
        posix_spawnattr_setsigmask(&attributes, &mask)
        posix_spawnattr_setflags(
            &attributes, Int16(POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK))

        let argv = ([executable] + command.arguments).map { strdup($0) } + [nil]
        let envp = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            argv.forEach { free($0) }
            envp.forEach { free($0) }
        }
        var pid: pid_t = 0
        let result = posix_spawn(&pid, executable, &actions, &attributes, argv, envp)
        guard result == 0 else {
            cleanUpOurEnds()
            // A program that is not there, or not executable, was named by
            // a person (--packer, kiln.yml, PATH): a bad configuration, not
            // a bug of Kiln's.
            if [ENOENT, EACCES, ENOEXEC, ENOTDIR, ELOOP].contains(result) {
                throw KilnError.badConfiguration(
                    "\(executable): cannot be started (\(String(cString: strerror(result))));"
                        + " check the path given for it"
                )
            }
            throw SystemCallError("start \(executable)", errno: result)
        }
        return ChildProcess(pid: pid, command: command, stdin: ourEnds[0], stdout: ourEnds[1], stderr: ourEnds[2])
    }

    /// Sends a signal to the child's whole process group.
    public func signalGroup(_ signal: Int32) {
        _ = kill(-pid, signal)
    }

    /// The termination if the child has ended, without blocking.
    public func poll() -> Termination? {
        termination.withLock { termination in
            if let termination { return termination }
            var status: Int32 = 0
            let result = waitpid(pid, &status, WNOHANG)
            if result == pid { termination = Termination(waitStatus: status) }
            return termination
        }
    }

    /// Blocks until the child ends.
    public func wait() -> Termination {
        termination.withLock { termination in
            if let termination { return termination }
            var status: Int32 = 0
            while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
            let ended = Termination(waitStatus: status)
            termination = ended
            return ended
        }
    }

    /// Stops the child's group: SIGTERM, then SIGKILL after `grace` seconds.
    public func stop(grace: TimeInterval = 5) -> Termination {
        if let ended = poll() {
            signalGroup(SIGKILL)  // leftovers of the group, if any
            return ended
        }
        signalGroup(SIGTERM)
        let deadline = Date().addingTimeInterval(grace)
        while Date() < deadline {
            if let ended = poll() {
                signalGroup(SIGKILL)
                return ended
            }
            usleep(20_000)
        }
        signalGroup(SIGKILL)
        return wait()
    }
}
