import DaemonLogging
import Foundation
import Logging
import Synchronization
import Testing

@testable import Appliance
@testable import ControlAPI
@testable import HostConfiguration
@testable import ProcessSpawning

#if canImport(Glibc)
    import Glibc
#endif

struct TestFailure: Error, CustomStringConvertible {
    var description: String
}

/// A directory of its own under /tmp for one test's sockets, removed by `remove()`.
struct TemporaryDirectory {
    let path: String

    init() throws {
        var template = Array("/tmp/vtep-appliance-XXXXXX".utf8CString)
        guard let made = mkdtemp(&template) else {
            throw TestFailure(description: "mkdtemp failed: \(String(cString: strerror(errno)))")
        }
        path = String(cString: made)
    }

    func remove() {
        try? FileManager.default.removeItem(atPath: path)
    }

    /// Runs `body` with a fresh directory and removes it afterwards, also when `body` throws.
    static func with<T>(_ body: (TemporaryDirectory) async throws -> T) async throws -> T {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        return try await body(directory)
    }
}

/// Answers from `Samples`, records who asked, and has a few switch names that behave badly:
/// "slow" answers after 300 ms, "missing" is refused.
final class SampleHandler: ControlHandler {
    private let peers = Mutex<[PeerCredentials]>([])

    var seenPeers: [PeerCredentials] { peers.withLock { $0 } }

    func handle(_ request: ControlRequest, from peer: PeerCredentials) async throws(ControlFailure)
        -> ControlResult
    {
        peers.withLock { $0.append(peer) }
        switch request.command {
        case let query as ShowMACTable:
            if query.logicalSwitch == "slow" { try? await Task.sleep(for: .milliseconds(300)) }
            if query.logicalSwitch == "missing" {
                throw ControlFailure("no logical switch named missing")
            }
            return .macTable(
                Samples.macTable.filter { row in
                    (query.logicalSwitch.map { $0 == row.logicalSwitch } ?? true)
                        && (query.mac.map { $0.description == row.mac } ?? true)
                })
        case is Counters: return .counters(Samples.counters)
        case is Configuration: return .configuration(Samples.configuration)
        default:
            throw ControlFailure(
                "the sample handler answers only mac-table, counters, configuration")
        }
    }
}

/// Collects what the server logs.
final class LogRecorder: Sendable {
    private let lines = Mutex<[String]>([])
    var recorded: [String] { lines.withLock { $0 } }
    /// A logger whose lines (journal form, without the newline) are recorded here.
    var logger: Logger {
        Logger(label: "test") { label in
            DaemonLogHandler(label: label, form: .journal, level: .info) { line in
                self.lines.withLock { $0.append(String(line.dropLast())) }
            }
        }
    }
}

/// A plain blocking Unix socket, to put exact bytes on the wire (what a misbehaving client
/// does) and read exactly what comes back.
final class RawConnection {
    let fd: Int32
    private var pending: [UInt8] = []

    init(_ path: String) throws {
        fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw TestFailure(description: "socket: errno \(errno)") }
        // A test that waits longer than this has found a hang: fail rather than block forever.
        // Generous: a loaded CI machine running every suite at once is slow, not hung.
        var timeout = timeval(tv_sec: 60, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            for (index, byte) in path.utf8.enumerated() { raw[index] = byte }
        }
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        guard result == 0 else {
            let code = errno
            close(fd)
            throw TestFailure(description: "connect \(path): \(String(cString: strerror(code)))")
        }
    }

    deinit { close(fd) }

    /// Writes all of `bytes`; returns false if the server closed first (EPIPE/ECONNRESET),
    /// which is allowed when it refuses what it has read so far.
    @discardableResult
    func send(_ bytes: [UInt8]) throws -> Bool {
        var offset = 0
        while offset < bytes.count {
            let sent = bytes[offset...].withUnsafeBytes {
                Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL))
            }
            if sent < 0 {
                if errno == EINTR { continue }
                if errno == EPIPE || errno == ECONNRESET { return false }
                throw TestFailure(description: "send: \(String(cString: strerror(errno)))")
            }
            offset += sent
        }
        return true
    }

    func send(_ text: String) throws { try send(Array(text.utf8)) }

    func shutdownWrite() { shutdown(fd, Int32(SHUT_WR)) }

    /// The next line without its newline; nil at end of stream.
    func readLine() throws -> String? {
        while true {
            if let newline = pending.firstIndex(of: UInt8(ascii: "\n")) {
                let line = String(decoding: pending[..<newline], as: UTF8.self)
                pending.removeSubrange(...newline)
                return line
            }
            var chunk = [UInt8](repeating: 0, count: 65536)
            let count = recv(fd, &chunk, chunk.count, 0)
            if count < 0 {
                if errno == EINTR { continue }
                // Unread request bytes make Linux reset the connection when the server closes;
                // the response was queued before, so an error here is the end of the stream.
                if errno == ECONNRESET { return nil }
                throw TestFailure(description: "recv: \(String(cString: strerror(errno)))")
            }
            if count == 0 {
                guard pending.isEmpty else {
                    throw TestFailure(description: "stream ended inside a line: \(pending)")
                }
                return nil
            }
            pending += chunk[..<count]
        }
    }
}

/// Runs blocking code on a thread of its own, so that it does not hold a thread of the
/// cooperative pool that the server's handler needs.
func onThread<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        Thread.detachNewThread {
            continuation.resume(with: Result { try body() })
        }
    }
}
