import Glibc
import SystemdNotify
import Testing

/// A unix datagram socket standing in for systemd's notification socket.
final class NotifySocket {
    let fd: Int32
    let name: String

    /// `name` starting with "@" binds in the abstract namespace, as systemd's own does.
    init(name: String) throws {
        fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        try #require(fd >= 0)
        self.name = name
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        var path = Array(name.utf8)
        if path.first == UInt8(ascii: "@") { path[0] = 0 }
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: path) }
        let length = socklen_t(MemoryLayout.offset(of: \sockaddr_un.sun_path)! + path.count)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) }
        }
        try #require(bound == 0, "bind \(name): errno \(errno)")
        var timeout = timeval(tv_sec: 5, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    }

    deinit {
        close(fd)
        if !name.hasPrefix("@") { unlink(name) }
    }

    func receive() throws -> String {
        var buffer = [UInt8](repeating: 0, count: 4096)
        let n = recv(fd, &buffer, buffer.count, 0)
        try #require(n >= 0, "nothing received: errno \(errno)")
        return String(decoding: buffer[..<n], as: UTF8.self)
    }
}

@Suite struct SystemdNotifierTests {
    func uniqueName() -> String {
        "vtep-notify-test-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
    }

    @Test func sendsOneDatagramToAPathSocket() throws {
        let socket = try NotifySocket(name: "/tmp/\(uniqueName()).sock")
        let notifier = try #require(SystemdNotifier(environment: ["NOTIFY_SOCKET": socket.name]))
        try notifier.notify(["READY=1", "STATUS=forwarding"])
        #expect(try socket.receive() == "READY=1\nSTATUS=forwarding")
        try notifier.notify(["WATCHDOG=1"])
        #expect(try socket.receive() == "WATCHDOG=1")
    }

    @Test func sendsToAnAbstractSocket() throws {
        let socket = try NotifySocket(name: "@\(uniqueName())")
        let notifier = try #require(SystemdNotifier(environment: ["NOTIFY_SOCKET": socket.name]))
        try notifier.notify(["STOPPING=1"])
        #expect(try socket.receive() == "STOPPING=1")
    }

    @Test func noSocketNoNotifier() {
        #expect(SystemdNotifier(environment: [:]) == nil)
        #expect(SystemdNotifier(environment: ["NOTIFY_SOCKET": "relative/path"]) == nil)
        #expect(
            SystemdNotifier(environment: ["NOTIFY_SOCKET": "/" + String(repeating: "x", count: 200)]
            ) == nil)
    }

    @Test func aMissingSocketIsAnError() throws {
        let notifier = try #require(
            SystemdNotifier(environment: ["NOTIFY_SOCKET": "/tmp/\(uniqueName()).absent"]))
        #expect(throws: SystemdNotifyError(call: "sendto", errno: ENOENT)) {
            try notifier.notify(["READY=1"])
        }
    }

    @Test func watchdogIntervalForThisProcessOnly() {
        #expect(
            SystemdNotifier.watchdogInterval(environment: ["WATCHDOG_USEC": "20000000"], pid: 42)
                == .seconds(20))
        #expect(
            SystemdNotifier.watchdogInterval(
                environment: ["WATCHDOG_USEC": "3000000", "WATCHDOG_PID": "42"], pid: 42)
                == .seconds(3))
        #expect(
            SystemdNotifier.watchdogInterval(
                environment: ["WATCHDOG_USEC": "3000000", "WATCHDOG_PID": "41"], pid: 42) == nil)
        #expect(SystemdNotifier.watchdogInterval(environment: [:], pid: 42) == nil)
        #expect(
            SystemdNotifier.watchdogInterval(environment: ["WATCHDOG_USEC": "0"], pid: 42) == nil)
        #expect(
            SystemdNotifier.watchdogInterval(environment: ["WATCHDOG_USEC": "x"], pid: 42) == nil)
    }
}
