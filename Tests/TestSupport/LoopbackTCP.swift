import Foundation

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

/// TCP on 127.0.0.1 for the tests of listeners (the metrics endpoint): a port nothing holds,
/// a socket holding one, a connection attempt, and one plain HTTP/1.1 exchange.
public struct LoopbackTCPFailure: Error, CustomStringConvertible {
    public var description: String
}

/// A socket listening on 127.0.0.1, on a port the kernel chose.
public func loopbackListener() throws -> (fd: Int32, port: UInt16) {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    var address = loopback(port: 0)
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let ok = withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
            bind(fd, $0, length) == 0 && listen(fd, 4) == 0 && getsockname(fd, $0, &length) == 0
        }
    }
    guard ok else {
        let code = errno
        close(fd)
        throw LoopbackTCPFailure(description: "cannot listen on 127.0.0.1: errno \(code)")
    }
    return (fd, UInt16(bigEndian: address.sin_port))
}

/// A TCP port on 127.0.0.1 that nothing listens on now.
public func freeLoopbackPort() throws -> UInt16 {
    let listener = try loopbackListener()
    close(listener.fd)
    return listener.port
}

/// Waits until nothing accepts connections on 127.0.0.1:`port` any more. A listener closed
/// by its owner can still accept for a few milliseconds while another process of the test run
/// is between fork and exec (its copy of the descriptor table holds the socket until exec
/// closes it), so a test checks a closed port with this, not with one attempt.
public func waitUntilClosed(
    loopbackPort port: UInt16, fileID: String = #fileID, line: Int = #line
) throws {
    try waitUntil(
        "nothing to listen on 127.0.0.1:\(port)", timeout: .seconds(30), fileID: fileID,
        line: line
    ) { !canConnect(toLoopbackPort: port) }
}

/// The same wait for async tests: it sleeps with `Task.sleep`, so it never holds one of the
/// test process's cooperative threads (two on this machine) that the server under test may
/// need to answer.
public func waitUntilClosed(
    loopbackPort port: UInt16, fileID: String = #fileID, line: Int = #line
) async throws {
    try await waitUntil(
        "nothing to listen on 127.0.0.1:\(port)", timeout: .seconds(30), fileID: fileID,
        line: line
    ) { () async -> Bool in !canConnect(toLoopbackPort: port) }
}

/// `loopbackHTTP` for async tests: the blocking exchange runs on a thread of its own, so the
/// cooperative threads stay free for the server (whose answers are built on them).
public func loopbackHTTP(_ port: UInt16, _ request: String) async throws -> String {
    try await withCheckedThrowingContinuation { continuation in
        let thread = Thread {
            continuation.resume(with: Result { try loopbackHTTP(port, request) as String })
        }
        thread.start()
    }
}

/// Whether a TCP connection to 127.0.0.1:`port` is accepted.
public func canConnect(toLoopbackPort port: UInt16) -> Bool {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    return connectLoopback(fd, port)
}

/// Sends `request` to 127.0.0.1:`port` and reads the answer until the server closes (at most
/// 240 s without a byte). A server under test in this process answers on Swift's cooperative
/// pool, one thread per CPU (two here), which the test run shares with every test that waits
/// with a blocking sleep (`waitUntil`): early in a full `make test`, while most suites start
/// at once, a metrics server once answered nothing for over 60 s (session 17).
public func loopbackHTTP(_ port: UInt16, _ request: String) throws -> String {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var timeout = timeval(tv_sec: 240, tv_usec: 0)
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    guard connectLoopback(fd, port) else {
        throw LoopbackTCPFailure(description: "cannot connect to 127.0.0.1:\(port): errno \(errno)")
    }
    let bytes = Array(request.utf8)
    guard send(fd, bytes, bytes.count, 0) == bytes.count else {
        throw LoopbackTCPFailure(description: "send to 127.0.0.1:\(port) failed: errno \(errno)")
    }
    var response: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 65536)
    while true {
        let n = recv(fd, &buffer, buffer.count, 0)
        if n < 0 {
            throw LoopbackTCPFailure(
                description: "recv from 127.0.0.1:\(port) failed: errno \(errno)")
        }
        if n == 0 { break }
        response += buffer[0..<n]
    }
    return String(decoding: response, as: UTF8.self)
}

private func loopback(port: UInt16) -> sockaddr_in {
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = port.bigEndian
    address.sin_addr.s_addr = UInt32(0x7f00_0001).bigEndian
    return address
}

private func connectLoopback(_ fd: Int32, _ port: UInt16) -> Bool {
    var address = loopback(port: port)
    return withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
            connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0
        }
    }
}
