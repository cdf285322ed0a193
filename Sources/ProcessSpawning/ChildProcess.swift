import Foundation
import Synchronization

/// Why a child process could not be started or did not succeed.
package enum ChildProcessError: Error, Hashable, Sendable, CustomStringConvertible {
    case spawnFailed(executable: String, reason: String)
    /// A short command (`ChildProcess.run`) exited other than 0: its standard error and output.
    case toolFailed(command: String, status: String, output: String)

    package var description: String {
        switch self {
        case .spawnFailed(let executable, let reason):
            return "cannot start \(executable): \(reason)"
        case .toolFailed(let command, let status, let output):
            return "\(command) \(status): \(output.trimmingCharacters(in: .whitespacesAndNewlines))"
        }
    }
}

/// A child process started with posix_spawn, watched by one thread that reaps it.
///
/// Why not Foundation.Process: the child must not inherit the data plane's sockets, and
/// posix_spawn lets us close every descriptor above stderr in the child
/// (`posix_spawn_file_actions_addclosefrom_np`) and reset the signal mask and dispositions the
/// test runner or vtepd's threads may have changed. The child gets its own process group, so a
/// Ctrl-C meant for vtepd is not also delivered to it; vtepd stops it.
///
/// Why not swift-subprocess (1.0.2, checked): it gives the same hygiene (posix_spawn with
/// `addclosefrom_np`, an empty signal mask and default dispositions, a process group), but its
/// API scopes a process's life to a closure (`run(...) { execution in ... }`), while a
/// supervised child (ovsdb-server, udhcpc) outlives the call that starts it: an actor keeps
/// it, signals it, watches for its death and restarts it. Holding each child's `run` open in a
/// task of its own would fit that too; until someone makes that move, this stays the one way
/// to start a program.
///
/// Signals go to the PID only while it is not yet reaped: the watcher waits with `WNOWAIT`,
/// records the exit under a lock and only then reaps, so `signal(_:)` can never hit a reused
/// PID.
package final class ChildProcess: Sendable {
    package let pid: pid_t
    private let exitStatus = Mutex<Int32?>(nil)

    private init(pid: pid_t) {
        self.pid = pid
    }

    /// Starts `executable` with `arguments`: stdin from /dev/null, stdout and stderr to the
    /// given descriptors, nothing else inherited; `environment` (`NAME=value` strings) instead
    /// of vtepd's own when given.
    package static func spawn(
        _ executable: String, _ arguments: [String], stdout: Int32, stderr: Int32,
        environment: [String]? = nil
    ) throws(ChildProcessError) -> ChildProcess {
        var pid: pid_t = 0
        let result = HostCommand.spawnQuietly(
            &pid, executable, arguments, stdin: "/dev/null", stdout: stdout, stderr: stderr,
            newProcessGroup: true, environment: environment)
        guard result == 0 else {
            throw .spawnFailed(executable: executable, reason: String(cString: strerror(result)))
        }
        return ChildProcess(pid: pid)
    }

    /// Waits for the child to exit, on a thread of its own (waitpid blocks), and reaps it.
    /// Returns the raw wait status. Call once.
    package func waitForExit() async -> Int32 {
        await withCheckedContinuation { continuation in
            let thread = Thread { [self] in
                var info = siginfo_t()
                while waitid(P_PID, id_t(pid), &info, WEXITED | WNOWAIT) != 0 && errno == EINTR {}
                var status: Int32 = 0
                exitStatus.withLock { recorded in
                    while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
                    recorded = status
                }
                continuation.resume(returning: status)
            }
            thread.name = "wait \(pid)"
            thread.start()
        }
    }

    /// Sends `signal` unless the child has already been reaped. True if it was sent.
    @discardableResult
    package func signal(_ signal: Int32) -> Bool {
        exitStatus.withLock { recorded in
            guard recorded == nil else { return false }
            return kill(pid, signal) == 0
        }
    }

    /// Nil while running.
    package var exit: Int32? { exitStatus.withLock { $0 } }

    /// "exited with status 1", "killed by signal 9 (SIGKILL)".
    package static func describe(_ status: Int32) -> String {
        let signal = status & 0x7F
        if signal == 0 { return "exited with status \((status >> 8) & 0xFF)" }
        let name = strsignal(signal).map { String(cString: $0) } ?? "signal \(signal)"
        return "killed by signal \(signal) (\(name))"
    }

    package static func exitedCleanly(_ status: Int32) -> Bool { status == 0 }

    /// Runs a short command to completion and returns its standard output; throws
    /// `toolFailed` with its standard error if it does not exit 0.
    @discardableResult
    package static func run(_ executable: String, _ arguments: [String])
        async throws(ChildProcessError)
        -> String
    {
        var out: [Int32] = [0, 0]
        var err: [Int32] = [0, 0]
        // pipe2 is not exported by Swift's Glibc; the children we spawn close these anyway.
        guard pipe(&out) == 0, pipe(&err) == 0 else {
            throw .spawnFailed(executable: executable, reason: String(cString: strerror(errno)))
        }
        for fd in out + err { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        let child: ChildProcess
        do {
            child = try spawn(executable, arguments, stdout: out[1], stderr: err[1])
        } catch {
            for fd in out + err { close(fd) }
            throw error
        }
        close(out[1])
        close(err[1])
        // Both pipes drain concurrently: a child filling one while we block on the other
        // would deadlock.
        async let output = readAll(out[0])
        async let errors = readAll(err[0])
        let status = await child.waitForExit()
        let (stdout, stderr) = await (output, errors)
        guard exitedCleanly(status) else {
            throw .toolFailed(
                command: ([executable] + arguments).joined(separator: " "),
                status: describe(status),
                output: String(decoding: stderr + stdout, as: UTF8.self))
        }
        return String(decoding: stdout, as: UTF8.self)
    }

    /// Reads `fd` to end of file on a thread of its own, then closes it.
    private static func readAll(_ fd: Int32) async -> [UInt8] {
        await withCheckedContinuation { continuation in
            Thread {
                var bytes: [UInt8] = []
                var buffer = [UInt8](repeating: 0, count: 65536)
                while true {
                    let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
                    if n > 0 {
                        bytes += buffer[0..<n]
                    } else if n < 0 && errno == EINTR {
                        continue
                    } else {
                        break
                    }
                }
                close(fd)
                continuation.resume(returning: bytes)
            }.start()
        }
    }
}
