import Appliance
import ControlAPI
import Datapath
import Foundation
import HostConfiguration
import ProcessSpawning

/// Crafted underlay input and the reads a robustness test needs around it: UDP datagrams sent
/// from inside a namespace, VXLAN headers with chosen (also wrong) bits, vtepd's drop counters
/// as maps, and captures repeated in windows until the wire shows a change.

/// A VXLAN datagram's payload (RFC 7348 §5): 8 bits of flags (I = 0x08), 24 reserved bits,
/// the 24-bit VNI and 8 reserved bits, then `inner`. Every field is the caller's, so a test
/// can set what a conforming sender never would.
struct LabVXLANPayload {
    var flags: UInt8 = 0x08
    var reservedAfterFlags: UInt32 = 0
    var vni: UInt32
    var reservedAfterVNI: UInt8 = 0
    var inner: [UInt8]

    var bytes: [UInt8] {
        [
            flags, UInt8(truncatingIfNeeded: reservedAfterFlags >> 16),
            UInt8(truncatingIfNeeded: reservedAfterFlags >> 8),
            UInt8(truncatingIfNeeded: reservedAfterFlags),
            UInt8(truncatingIfNeeded: vni >> 16), UInt8(truncatingIfNeeded: vni >> 8),
            UInt8(truncatingIfNeeded: vni), reservedAfterVNI,
        ] + inner
    }

    /// A 60-byte broadcast Ethernet frame from `source` with the local experimental
    /// EtherType 0x88B5 (IEEE 802): were it accepted, vtepd would flood it to its host, where
    /// a capture sees it.
    static func broadcastFrame(from source: [UInt8] = [0x02, 0x00, 0x0B, 0xAD, 0x00, 0x01])
        -> [UInt8]
    {
        [UInt8](repeating: 0xFF, count: 6) + source + [0x88, 0xB5]
            + [UInt8](repeating: 0x5A, count: 46)
    }
}

/// A frame sent after the input under test, on the same path (tunnel socket or access port),
/// that vtepd floods to host A. vtepd reads a socket in order and counts a packet before it
/// forwards a later one, and reports counters between batches; so once host A's capture holds
/// the probe, every earlier packet is counted and whatever vtepd made of it is in the capture.
/// That, not a pause, shows that nothing more came of them.
enum LabProbe {
    static let source: [UInt8] = [0x02, 0x00, 0x00, 0x00, 0x9E, 0x01]
    /// tshark's display filter for the probe.
    static let filter = "eth.src == 02:00:00:00:9e:01"
    static var frame: [UInt8] { LabVXLANPayload.broadcastFrame(from: source) }
    /// The probe in VNI 5001, as a VXLAN datagram's payload.
    static var vxlan: [UInt8] { LabVXLANPayload(vni: 5001, inner: frame).bytes }
    /// The probe with key 5001, as a GRE packet (K set, Transparent Ethernet Bridging).
    static var gre: [UInt8] { [0x20, 0x00, 0x65, 0x58, 0x00, 0x00, 0x13, 0x89] + frame }
}

/// vtepd's drop counters, read from `vtepd show counters --json`: every drop reason (the
/// forwarding core's and the data plane's own) and every malformed reason, zero when absent.
struct LabDropCounters: Equatable, CustomStringConvertible {
    var drops: [String: UInt64]
    var malformed: [String: UInt64]

    /// The counters that differ from `before`, as `name: +delta` (malformed reasons as
    /// `malformed/name`); a counter that went down shows as a negative delta.
    func changes(since before: LabDropCounters) -> [String: Int64] {
        var result: [String: Int64] = [:]
        for (prefix, now, then) in [
            ("", drops, before.drops), ("malformed/", malformed, before.malformed),
        ] {
            for key in Set(now.keys).union(then.keys) {
                let delta = Int64(now[key] ?? 0) - Int64(then[key] ?? 0)
                if delta != 0 { result[prefix + key] = delta }
            }
        }
        return result
    }

    var description: String {
        let nonzero = drops.filter { $0.value > 0 }.sorted { $0.key < $1.key }
            .map { "\($0.key)=\($0.value)" }
        let bad = malformed.sorted { $0.key < $1.key }.map { "malformed/\($0.key)=\($0.value)" }
        return (nonzero + bad).joined(separator: " ")
    }
}

extension LabVTEPD {
    /// The whole report of `vtepd show counters --json`, decoded with the control API's own
    /// type.
    func countersReport() throws -> CountersReport {
        let text = try show("counters", json: true)
        do {
            return try JSONDecoder().decode(CountersReport.self, from: Data(text.utf8))
        } catch {
            throw LabError(description: "vtepd show counters --json: \(error)\n\(text)")
        }
    }

    func dropCounters() throws -> LabDropCounters {
        let report = try countersReport()
        var drops: [String: UInt64] = [:]
        for entry in report.drops { drops[entry.reason, default: 0] += entry.count }
        var malformed: [String: UInt64] = [:]
        for entry in report.malformed { malformed[entry.reason, default: 0] += entry.count }
        return LabDropCounters(drops: drops, malformed: malformed)
    }

    /// The "Offloads" counters of `vtepd show counters --json` (`super_frames_in`,
    /// `segments_out`, `coalesced_frames_out`, `coalesced_segments`, `checksums_completed`);
    /// throws when the report has none of them, so a test never reads a missing counter as 0.
    func offloadCounters() throws -> [String: UInt64] {
        let report = try countersReport()
        var counters: [String: UInt64] = [:]
        for entry in report.offloads { counters[entry.reason, default: 0] += entry.count }
        let names = [
            "super_frames_in", "segments_out", "coalesced_frames_out", "coalesced_segments",
            "checksums_completed", "trains_out", "trains_coalesced", "tunnel_gso_out",
            "tunnel_gso_refused",
        ]
        guard names.allSatisfy({ counters[$0] != nil }) else {
            throw LabError(description: "vtepd show counters lacks offload counters: \(counters)")
        }
        return counters
    }

    /// The PID of the ovsdb-server vtepd supervises, from its pidfile
    /// (`STATE/ovsdb-server.pid`, DatabaseServer), checked to be ovsdb-server and vtepd's own
    /// child so that a signal sent to it can reach nothing else. Nil while there is none.
    func databaseServerPID() -> pid_t? {
        let pidfile = stateRoot.appendingPathComponent("ovsdb-server.pid")
        guard let text = try? String(contentsOf: pidfile, encoding: .utf8),
            let pid = pid_t(text.trimmingCharacters(in: .whitespacesAndNewlines)), pid > 1,
            let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8)
        else { return nil }
        // proc(5): "pid (comm) state ppid ..."; comm may hold spaces, so split after ')'.
        guard let open = stat.firstIndex(of: "("), let close = stat.lastIndex(of: ")") else {
            return nil
        }
        let command = stat[stat.index(after: open)..<close]
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        guard command == "ovsdb-server", fields.count > 1, fields[0] != "Z",
            pid_t(fields[1]) == process.pid
        else { return nil }
        return pid
    }

    /// Whether vtepd's ovsdb-server accepts a connection on `STATE/db.sock` now.
    var databaseAcceptsConnections: Bool {
        let path = stateRoot.appendingPathComponent("db.sock").path
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else { return false }
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: bytes) }
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) == 0
            }
        }
    }
}

extension Lab {
    /// Sends each of `payloads` as one UDP datagram from `source` (an address configured in
    /// `namespace`; an ephemeral port) to `destination`:`port`. Runs on a thread of its own
    /// that enters `namespace` with setns(2), which moves only that thread, so the test
    /// process stays where it is; the thread ends with the send, and the namespace with it.
    func sendUDP(
        from namespace: String, source: String, to destination: String, port: UInt16 = 4789,
        payloads: [[UInt8]]
    ) throws {
        let outcome = LabThreadOutcome()
        let thread = Thread {
            outcome.finish(
                Result {
                    try NetworkNamespace.enterOnCurrentThread(path: "/run/netns/\(namespace)")
                    try Lab.sendDatagrams(
                        source: source, destination: destination, port: port, payloads: payloads)
                })
        }
        thread.start()
        guard outcome.wait(timeout: .seconds(20)) else {
            throw LabError(description: "sending UDP in \(namespace) did not finish in 20 s")
        }
        try outcome.result?.get()
    }

    private static func sendDatagrams(
        source: String, destination: String, port: UInt16, payloads: [[UInt8]]
    ) throws {
        let v6 = destination.contains(":")
        let fd = socket(v6 ? AF_INET6 : AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
        guard fd >= 0 else { throw LabError(description: "socket: \(Lab.errnoText())") }
        defer { close(fd) }
        var from = try socketAddress(source, port: 0)
        var to = try socketAddress(destination, port: port)
        let bound = withUnsafeBytes(of: &from.storage) {
            bind(fd, $0.baseAddress!.assumingMemoryBound(to: sockaddr.self), from.length)
        }
        guard bound == 0 else {
            throw LabError(description: "bind to \(source): \(Lab.errnoText())")
        }
        for payload in payloads {
            let sent = payload.withUnsafeBytes { bytes in
                withUnsafeBytes(of: &to.storage) {
                    sendto(
                        fd, bytes.baseAddress, bytes.count, 0,
                        $0.baseAddress!.assumingMemoryBound(to: sockaddr.self), to.length)
                }
            }
            guard sent == payload.count else {
                throw LabError(
                    description: "sendto \(destination):\(port) (\(payload.count) bytes): "
                        + Lab.errnoText())
            }
        }
    }

    private static func socketAddress(_ text: String, port: UInt16) throws
        -> (storage: sockaddr_storage, length: socklen_t)
    {
        var storage = sockaddr_storage()
        if text.contains(":") {
            var address = sockaddr_in6()
            address.sin6_family = sa_family_t(AF_INET6)
            address.sin6_port = port.bigEndian
            guard inet_pton(AF_INET6, text, &address.sin6_addr) == 1 else {
                throw LabError(description: "\(text) is not an IPv6 address")
            }
            withUnsafeMutableBytes(of: &storage) { raw in
                withUnsafeBytes(of: address) { raw.copyMemory(from: $0) }
            }
            return (storage, socklen_t(MemoryLayout<sockaddr_in6>.size))
        }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        guard inet_pton(AF_INET, text, &address.sin_addr) == 1 else {
            throw LabError(description: "\(text) is not an IPv4 address")
        }
        withUnsafeMutableBytes(of: &storage) { raw in
            withUnsafeBytes(of: address) { raw.copyMemory(from: $0) }
        }
        return (storage, socklen_t(MemoryLayout<sockaddr_in>.size))
    }

    private static func errnoText() -> String { String(cString: strerror(errno)) }

    /// One line per frame of `pcap` matching `displayFilter` (source, destination, protocol,
    /// tshark's summary), for failure messages that say what arrived, not only how much.
    func summaries(in pcap: URL, matching displayFilter: String) throws -> [String] {
        let result = try execute(
            [
                "tshark", "-n", "-r", pcap.path, "-Y", displayFilter, "-T", "fields", "-e",
                "eth.src", "-e", "eth.dst", "-e", "_ws.col.Protocol", "-e", "_ws.col.Info",
            ])
        return result.output.split(separator: "\n").filter { !$0.isEmpty }.map(String.init)
    }

    /// Captures on every one of `ports` (interface, namespace) for `window`, counts the frames
    /// matching each one's display filter, and repeats with fresh captures until `done`
    /// accepts the counts (in the order of `ports`) or `timeout` passes. Returns the counts of
    /// the accepting window; throws with the last counts when none accepted. Nothing about
    /// how long it took is asserted: the deadline only bounds a test that would otherwise hang.
    @discardableResult
    func watchWire(
        _ ports: [(interface: String, namespace: String, filter: String)],
        window: Duration = .seconds(1), timeout: Duration = .seconds(30), what: String,
        until done: ([Int]) -> Bool
    ) throws -> [Int] {
        let deadline = ContinuousClock.now + timeout
        var last: [Int] = []
        repeat {
            let captures = try ports.map { try capture(on: $0.interface, in: $0.namespace) }
            Thread.sleep(
                forTimeInterval: Double(window.components.seconds)
                    + Double(window.components.attoseconds) / 1e18)
            for capture in captures { try stop(capture, settle: .milliseconds(100)) }
            last = try zip(ports, captures).map { port, capture in
                let n = try count(in: capture.file, matching: port.filter)
                try? FileManager.default.removeItem(at: capture.file)
                return n
            }
            if done(last) { return last }
        } while ContinuousClock.now < deadline
        throw LabError(
            description: "the wire never showed \(what) within \(timeout); last window's counts "
                + "\(last) for \(ports.map { "\($0.interface): \($0.filter)" })")
    }
}

/// The result of work done on a thread of its own, handed back to the waiting test.
private final class LabThreadOutcome: @unchecked Sendable {
    private let condition = NSCondition()
    private var stored: Result<Void, any Error>?

    var result: Result<Void, any Error>? { condition.withLock { stored } }

    func finish(_ result: Result<Void, any Error>) {
        condition.withLock {
            stored = result
            condition.broadcast()
        }
    }

    func wait(timeout: Duration) -> Bool {
        let deadline = Date().addingTimeInterval(Double(timeout.components.seconds))
        return condition.withLock {
            while stored == nil {
                if !condition.wait(until: deadline) { return stored != nil }
            }
            return true
        }
    }
}
