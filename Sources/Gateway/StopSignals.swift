import CLinuxNet
import Dispatch
import Foundation
import Logging
import ServiceLifecycle

/// SIGTERM and SIGINT, caught from vtepd's first step to its last: either one begins the
/// service group's orderly stop, whenever it comes.
///
/// The service group's own signal handling (`gracefulShutdownSignals`) begins only when the
/// group runs, after the start has made its children, sockets and worker: a signal before
/// that ended vtepd by the default action (exit 143) and left the ovsdb-server it had started
/// running. Here the handler is installed before anything starts; a signal during the start
/// waits in a pipe, the start completes (or fails and undoes itself), and the group, once it
/// runs, finds it at once and stops everything in order. One handler for the whole life: no
/// moment where the two could each take a signal and one of them not act on it.
///
/// Children are spawned with every signal at its default (`HostCommand`), so they do not
/// inherit the handler.
public struct StopSignals: Service {
    private let readFD: Int32

    /// Installs the handler. Once per process: a second call would take the signals from the
    /// first one's pipe.
    public static func catchNow() throws -> StopSignals {
        let fd = clinuxnet_catch_stop_signals()
        guard fd >= 0 else { throw StopSignalsError(errno: errno) }
        return StopSignals(readFD: fd)
    }

    /// Returns at the first signal (the group then stops, as for any service that ends), or
    /// when the group stops for another reason.
    public func run() async throws {
        let fd = readFD
        let signals = AsyncStream<Int32> { continuation in
            nonisolated(unsafe) let source = DispatchSource.makeReadSource(
                fileDescriptor: fd, queue: DispatchQueue(label: "vtepd.stop-signals"))
            source.setEventHandler {
                var bytes = [UInt8](repeating: 0, count: 16)
                let count = read(fd, &bytes, bytes.count)
                for byte in bytes.prefix(max(count, 0)) { continuation.yield(Int32(byte)) }
            }
            continuation.onTermination = { _ in source.cancel() }
            source.resume()
        }
        // Made here, not at `catchNow`: logging is set up in between.
        let logger = Logger(label: "vtepd")
        for await signal in signals.cancelOnGracefulShutdown() {
            logger.notice("\(Self.name(signal)): stopping")
            return
        }
    }

    static func name(_ signal: Int32) -> String {
        switch signal {
        case SIGTERM: "SIGTERM"
        case SIGINT: "SIGINT"
        default: "signal \(signal)"
        }
    }
}

/// The handler could not be installed (no descriptors left, say): vtepd does not start.
public struct StopSignalsError: Error, CustomStringConvertible {
    let errno: Int32
    public var description: String {
        "cannot catch SIGTERM and SIGINT: \(String(cString: strerror(errno))) (errno \(errno))"
    }
}
