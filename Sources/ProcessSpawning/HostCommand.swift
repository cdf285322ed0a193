import Glibc

/// Why a host program could not do its job.
public struct HostCommandError: Error, Sendable, Hashable, CustomStringConvertible {
    public var command: String
    public var reason: String

    public init(command: String, reason: String) {
        self.command = command
        self.reason = reason
    }

    public var description: String { "\(command): \(reason)" }
}

/// A short host program run to completion by vtepd (chronyc): an argument vector through
/// posix_spawn, never a shell; standard input from /dev/null, standard output and error
/// captured together; no other descriptor inherited (vtepd's sockets stay vtepd's); killed
/// when it outlives `timeout`, so a hung daemon cannot hang a configuration change.
public enum HostCommand {
    /// Runs `path` with `arguments`; returns what it printed when it exits 0, throws with that
    /// output otherwise.
    @discardableResult
    public static func run(_ path: String, _ arguments: [String], timeout: Duration = .seconds(10))
        throws(HostCommandError) -> String
    {
        let line = ([path] + arguments).joined(separator: " ")
        guard access(path, X_OK) == 0 else {
            throw HostCommandError(command: line, reason: "\(path) is not installed")
        }
        var pipeEnds: [Int32] = [-1, -1]
        // pipe2(O_CLOEXEC) is not exported to Swift; close-on-exec is set just after, and
        // the child closes everything above stderr anyway.
        guard pipe(&pipeEnds) == 0 else {
            throw HostCommandError(
                command: line, reason: "pipe: \(String(cString: strerror(errno)))")
        }
        let (readEnd, writeEnd) = (pipeEnds[0], pipeEnds[1])
        _ = fcntl(readEnd, F_SETFD, FD_CLOEXEC)
        _ = fcntl(writeEnd, F_SETFD, FD_CLOEXEC)
        defer { close(readEnd) }

        var pid: pid_t = 0
        var started: Int32 = 0
        // ETXTBSY: the program was just written, and a child another thread forked meanwhile
        // still holds that write descriptor until it execs (execve(2)); it passes in moments.
        for attempt in 0..<50 {
            if attempt > 0 { usleep(20_000) }
            started = spawnQuietly(
                &pid, path, arguments, stdin: "/dev/null", stdout: writeEnd, stderr: writeEnd,
                newProcessGroup: false, environment: nil)
            if started != ETXTBSY { break }
        }
        close(writeEnd)
        guard started == 0 else {
            throw HostCommandError(
                command: line, reason: "cannot start: \(String(cString: strerror(started)))")
        }

        // Read until the child closes its end (it exited) or the time is up.
        var output: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        let deadline = ContinuousClock.now + timeout
        var timedOut = false
        while true {
            let left = deadline - ContinuousClock.now
            if left <= .zero {
                timedOut = true
                break
            }
            var descriptor = pollfd(fd: readEnd, events: Int16(POLLIN), revents: 0)
            let milliseconds = Int32(min(left.components.seconds * 1000 + 1, 1000))
            let ready = poll(&descriptor, 1, milliseconds)
            if ready < 0 && errno == EINTR { continue }
            if ready <= 0 { continue }
            let count = read(readEnd, &buffer, buffer.count)
            if count < 0 && errno == EINTR { continue }
            if count <= 0 { break }
            if output.count < 65536 { output += buffer[0..<count] }
        }
        if timedOut { kill(pid, SIGKILL) }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        let text = String(decoding: output, as: UTF8.self)
        if timedOut {
            throw HostCommandError(command: line, reason: "no answer within \(timeout), killed")
        }
        let signal = status & 0x7F
        guard signal == 0 else {
            throw HostCommandError(command: line, reason: "killed by signal \(signal)")
        }
        let exit = (status >> 8) & 0xFF
        guard exit == 0 else {
            let said = text.split(separator: "\n").joined(separator: "; ")
            throw HostCommandError(
                command: line,
                reason: "exited with status \(exit)" + (said.isEmpty ? "" : ": \(said)"))
        }
        return text
    }

    /// posix_spawn of `path` with standard input from `stdin`, output and error onto the given
    /// descriptors, every other descriptor closed, no signal blocked or ignored (the child
    /// must not inherit vtepd's threads' choices), optionally in a process group of its own,
    /// with `environment` (`NAME=value`) or the caller's. Returns posix_spawn's result.
    public static func spawnQuietly(
        _ pid: inout pid_t, _ path: String, _ arguments: [String], stdin: String,
        stdout: Int32, stderr: Int32, newProcessGroup: Bool, environment: [String]?
    ) -> Int32 {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, stdin, O_RDONLY, 0)
        posix_spawn_file_actions_adddup2(&actions, stdout, 1)
        posix_spawn_file_actions_adddup2(&actions, stderr, 2)
        closeDescriptorsFrom3(&actions)
        return spawn(
            &pid, path, argv: [path] + arguments, actions: &actions,
            newProcessGroup: newProcessGroup, environment: environment)
    }

    /// posix_spawn of `path` with `argv` (its first word included) and `actions`, the child
    /// starting with no signal blocked and every signal at its default (a child inherits
    /// the mask and ignored signals of the thread that spawns it, and vtepd's threads and the
    /// test runner's block or ignore some), optionally in a process group of its own, with
    /// `environment` (`NAME=value`) or the caller's. Returns posix_spawn's result.
    public static func spawn(
        _ pid: inout pid_t, _ path: String, argv: [String],
        actions: UnsafePointer<posix_spawn_file_actions_t>?, newProcessGroup: Bool = false,
        environment: [String]? = nil
    ) -> Int32 {
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var none = sigset_t()
        sigemptyset(&none)
        posix_spawnattr_setsigmask(&attributes, &none)
        var all = sigset_t()
        sigfillset(&all)
        posix_spawnattr_setsigdefault(&attributes, &all)
        var flags = POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF
        if newProcessGroup {
            posix_spawnattr_setpgroup(&attributes, 0)
            flags |= POSIX_SPAWN_SETPGROUP
        }
        posix_spawnattr_setflags(&attributes, Int16(flags))
        let words: [UnsafeMutablePointer<CChar>?] = argv.map { strdup($0) } + [nil]
        defer { for pointer in words { free(pointer) } }
        let envp = environment.map { $0.map { strdup($0) } + [nil] }
        defer { for variable in envp ?? [] { free(variable) } }
        if let envp { return posix_spawn(&pid, path, actions, &attributes, words, envp) }
        return posix_spawn(&pid, path, actions, &attributes, words, environ)
    }

    /// Closes every descriptor from 3 up in the child (glibc 2.34's
    /// posix_spawn_file_actions_addclosefrom_np, looked up at run time as Swift's Glibc module
    /// does not export it; without it, each descriptor open now).
    public static func closeDescriptorsFrom3(_ actions: inout posix_spawn_file_actions_t) {
        typealias CloseFrom =
            @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32
        if let symbol = dlsym(nil, "posix_spawn_file_actions_addclosefrom_np") {
            let closeFrom = unsafeBitCast(symbol, to: CloseFrom.self)
            if closeFrom(&actions, 3) == 0 { return }
        }
        guard let directory = opendir("/proc/self/fd") else { return }
        defer { closedir(directory) }
        var open: [Int32] = []
        while let entry = readdir(directory) {
            // The name in place: a readdir record ends at its name's NUL, often short of
            // sizeof(dirent), so copying the 256-byte field can read past the buffer's end.
            let name = String(
                cString: (UnsafeRawPointer(entry) + MemoryLayout<dirent>.offset(of: \.d_name)!)
                    .assumingMemoryBound(to: CChar.self))
            if let fd = Int32(name), fd > 2 { open.append(fd) }
        }
        for fd in open { posix_spawn_file_actions_addclose(&actions, fd) }
    }
}
