import Appliance
import ControlAPI
import Foundation
import HostConfiguration
import ProcessSpawning

/// A program on a pseudo-terminal, as a person at a terminal runs it: vtepsh itself (an
/// operator at the console), or `ssh -tt`, so the remote vtepsh gets a terminal of sshd's and
/// runs its line editor.
final class LabTerminal {
    let master: Int32
    let process: LabProcess
    private(set) var screen = ""
    private var consumed: String.Index

    /// `arguments` in `namespace` (through `ip netns exec`), or, with no namespace, the
    /// program at the path `arguments[0]` in this one.
    /// `size` (rows, columns) is the terminal's (TIOCSWINSZ), as a terminal emulator sets it;
    /// nil leaves it 0 × 0, unknown.
    init(
        lab: Lab, _ arguments: [String], in namespace: String?,
        size: (rows: UInt16, columns: UInt16)? = nil
    ) throws {
        // posix_openpt, unlockpt and ptsname by hand (Glibc's Swift module lacks them):
        // pts(4), TIOCSPTLCK and TIOCGPTN from <asm-generic/ioctls.h>.
        master = open("/dev/ptmx", O_RDWR | O_NOCTTY)
        var unlock: Int32 = 0
        var number: UInt32 = 0
        guard master >= 0, ioctl(master, 0x4004_5431, &unlock) == 0,
            ioctl(master, 0x8004_5430, &number) == 0
        else { throw LabError(description: "cannot open a pty: \(errno)") }
        let slave = "/dev/pts/\(number)"
        if let size {
            var window = winsize(
                ws_row: size.rows, ws_col: size.columns, ws_xpixel: 0, ws_ypixel: 0)
            // TIOCSWINSZ (<asm-generic/ioctls.h>).
            guard ioctl(master, 0x5414, &window) == 0 else {
                throw LabError(description: "cannot size the pty: \(errno)")
            }
        }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, slave, O_RDWR, 0)
        posix_spawn_file_actions_adddup2(&actions, 0, 1)
        posix_spawn_file_actions_adddup2(&actions, 0, 2)
        posix_spawn_file_actions_addclose(&actions, master)
        HostCommand.closeDescriptorsFrom3(&actions)
        // The test runner's threads block most signals and a child inherits the mask (see
        // Lab.spawn); ssh must see SIGTERM when the test stops it.
        var words = arguments
        if let namespace {
            guard let ip = Lab.executable("ip") else {
                throw LabError(description: "ip is not installed (not found on PATH)")
            }
            words = [ip, "netns", "exec", namespace] + arguments
        }
        let path = words[0]
        var pid: pid_t = 0
        // The shell's history goes to the lab, never to the machine's home directory.
        let environment =
            ProcessInfo.processInfo.environment.filter { $0.key != "VTEPSH_HISTORY" }
            .map { "\($0.key)=\($0.value)" } + ["VTEPSH_HISTORY=\(lab.file("vtepsh-history").path)"]
        let status = HostCommand.spawn(
            &pid, path, argv: words, actions: &actions, environment: environment)
        guard status == 0 else {
            throw LabError(description: "cannot start \(arguments.first ?? ""): \(status)")
        }
        process = LabProcess(name: arguments.first ?? "", pid: pid, log: lab.file("pty"))
        consumed = screen.startIndex
        _ = fcntl(master, F_SETFL, fcntl(master, F_GETFL) | O_NONBLOCK)
    }

    /// The terminal is now `size`; the program is told with SIGWINCH, as a terminal emulator's
    /// kernel does for its foreground process group.
    func resize(rows: UInt16, columns: UInt16) throws {
        var window = winsize(ws_row: rows, ws_col: columns, ws_xpixel: 0, ws_ypixel: 0)
        guard ioctl(master, 0x5414, &window) == 0 else {
            throw LabError(description: "cannot size the pty: \(errno)")
        }
        kill(process.pid, SIGWINCH)
    }

    func type(_ text: String) throws {
        let bytes = Array(text.utf8)
        guard write(master, bytes, bytes.count) == bytes.count else {
            throw LabError(description: "writing to the pty failed: \(errno)")
        }
    }

    /// Reads the screen until `text` appears after what earlier calls consumed; returns the
    /// screen from there up to and including it.
    @discardableResult
    func expect(_ text: String, timeout: Duration = .seconds(30)) throws -> String {
        let deadline = ContinuousClock.now + timeout
        while true {
            if let range = screen.range(of: text, range: consumed..<screen.endIndex) {
                let seen = String(screen[consumed..<range.upperBound])
                consumed = range.upperBound
                return seen
            }
            guard ContinuousClock.now < deadline else {
                throw LabError(
                    description:
                        "the terminal did not show '\(text)' within \(timeout); screen since the last match:\n"
                        + String(screen[consumed...]))
            }
            drain()
        }
    }

    /// Waits for the program to exit by itself, reading what it still prints; its status.
    func waitForExit(timeout: Duration = .seconds(30)) -> Int32? {
        let deadline = ContinuousClock.now + timeout
        while process.isRunning && ContinuousClock.now < deadline { drain() }
        return process.status
    }

    func close() {
        process.stop(signal: SIGKILL)
        Glibc.close(master)
    }

    private func drain() {
        var descriptor = pollfd(fd: master, events: Int16(POLLIN), revents: 0)
        _ = poll(&descriptor, 1, 100)
        var buffer = [UInt8](repeating: 0, count: 4096)
        let count = read(master, &buffer, buffer.count)
        if count > 0 {
            let offset = screen.distance(from: screen.startIndex, to: consumed)
            screen += String(decoding: buffer[0..<count], as: UTF8.self)
            consumed = screen.index(screen.startIndex, offsetBy: offset)
        }
    }
}
