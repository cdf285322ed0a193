import Foundation
import TestSupport

/// An Ethernet frame a test puts on a wire itself: what a host cannot send on this kernel
/// (802.1Q-tagged frames, since it has no VLAN devices) or would not send (a chosen source MAC).
struct LabFrame: Sendable {
    /// IEEE 802 "local experimental" EtherType (IEEE Std 802-2014 §9.2.4): no host stack
    /// answers it, so an injected frame causes no traffic of its own.
    static let experimentalEtherType: UInt16 = 0x88B5

    var destination: String
    var source: String
    /// The VID of one 802.1Q tag (TPID 0x8100, PCP 0); nil = untagged.
    var vlan: UInt16?
    var etherType: UInt16 = LabFrame.experimentalEtherType
    var payload: [UInt8] = Array("vtep-gateway lab frame".utf8)

    /// The frame's bytes without FCS, padded to the 60-byte minimum (IEEE 802.3 §3.2.8) as a
    /// NIC would pad it.
    var bytes: [UInt8] {
        var frame = Self.macBytes(destination) + Self.macBytes(source)
        if let vlan {
            frame += [0x81, 0x00, UInt8(vlan >> 8), UInt8(vlan & 0xFF)]
        }
        frame += [UInt8(etherType >> 8), UInt8(etherType & 0xFF)] + payload
        if frame.count < 60 { frame += [UInt8](repeating: 0, count: 60 - frame.count) }
        return frame
    }

    /// The frame as mausezahn's raw layer-2 argument: colon-separated hex bytes, sent as is
    /// (no -a/-b/-t, so mausezahn builds no header of its own).
    var hex: String { bytes.map { String(format: "%02x", $0) }.joined(separator: ":") }

    private static func macBytes(_ text: String) -> [UInt8] {
        let parts = text.split(separator: ":").compactMap { UInt8($0, radix: 16) }
        precondition(parts.count == 6, "\(text) is not a MAC address")
        return parts
    }
}

extension Lab {
    /// Sends one broadcast frame from `mac` (on `vlan`) out of `site`'s host after the frames
    /// under test: vtepd takes it along the paths they took, so once a capture holds it, it
    /// holds every copy vtepd made of them, wrong ones included, and no pause is needed to
    /// show that nothing more came. `mac` should be new to the switch, so the probe moves no
    /// MAC.
    func injectProbe(_ mac: String, vlan: UInt16? = nil, from site: LabSite) throws {
        try inject(
            LabFrame(destination: "ff:ff:ff:ff:ff:ff", source: mac, vlan: vlan), count: 1,
            on: site.hostInterface, in: site.hostNamespace)
    }

    /// Sends `frame` `count` times (`interval` apart) out of `interface` in `namespace` with
    /// mausezahn (Debian netsniff-ng) over AF_PACKET, and returns when all are sent.
    func inject(
        _ frame: LabFrame, count: Int, on interface: String, in namespace: String,
        interval: Duration = .milliseconds(20)
    ) throws {
        precondition(count > 0, "count 0 means forever to mausezahn; use startInjecting")
        try execute(
            try mausezahn(frame, count: count, on: interface, interval: interval), in: namespace,
            timeout: .seconds(30) + interval * count)
    }

    /// Starts sending `frame` every `interval` out of `interface` in `namespace` until the
    /// returned process is stopped (by PID; the lab stops it at the end in any case).
    func startInjecting(
        _ frame: LabFrame, on interface: String, in namespace: String,
        interval: Duration = .milliseconds(100)
    ) throws -> LabProcess {
        try start(
            "mausezahn-\(interface)",
            try mausezahn(frame, count: 0, on: interface, interval: interval), in: namespace)
    }

    private func mausezahn(
        _ frame: LabFrame, count: Int, on interface: String, interval: Duration
    ) throws -> [String] {
        guard Lab.executable("mausezahn") != nil else {
            throw LabError(
                description: "these lab tests inject frames with mausezahn, which is not installed"
                    + " (Debian package netsniff-ng; appliance/install-deps.sh)")
        }
        let milliseconds =
            interval.components.seconds * 1000
            + interval.components.attoseconds / 1_000_000_000_000_000
        return [
            "mausezahn", interface, "-q", "-c", "\(count)", "-d", "\(max(1, milliseconds))msec",
            frame.hex,
        ]
    }

    /// Pins `address` to `mac` on `device` in `namespace` (a permanent neighbour entry), so
    /// the host sends no ARP of its own that would blur what a test counts.
    func pinNeighbour(_ address: String, to mac: String, on device: String, in namespace: String)
        throws
    {
        try execute(
            ["ip", "neigh", "replace", address, "lladdr", mac, "dev", device, "nud", "permanent"],
            in: namespace)
    }

    /// Frames of a capture that is still running matching `displayFilter`: what tcpdump has
    /// written so far (`-U` writes each packet as it arrives). tshark may report the last
    /// record cut short while tcpdump writes it; the complete ones still count.
    func countSoFar(_ capture: LabCapture, matching displayFilter: String) throws -> Int {
        try capture.process.requireRunning()
        let result = try attempt(
            [
                "tshark", "-n", "-r", capture.file.path, "-Y", displayFilter, "-T", "fields", "-e",
                "frame.number",
            ])
        return result.output.split(separator: "\n").filter { !$0.isEmpty }.count
    }

    /// Stops `capture` once it holds `expected` frames matching `displayFilter`, after
    /// `settle` so that any extra frame lands too (none is needed when what was awaited is a
    /// `LabProbe` sent last); throws, with the number seen, when it does not within `timeout`.
    /// On a loaded machine, frames can take longer than the settle alone to cross vtepd and
    /// reach tcpdump's file.
    func stop(
        _ capture: LabCapture, once expected: Int, match displayFilter: String,
        timeout: Duration = .seconds(20), settle: Duration = .milliseconds(300)
    ) throws {
        var seen = 0
        try waitUntil(
            "\(expected) frames matching \(displayFilter) on \(capture.interface)",
            timeout: timeout, lastSeen: "\(seen) seen"
        ) {
            seen = try countSoFar(capture, matching: displayFilter)
            return seen >= expected
        }
        try stop(capture, settle: settle)
    }
}

/// One row of `vtepd show mac-table --json`.
struct LabMACEntry: Sendable, Equatable, CustomStringConvertible {
    let logicalSwitch: String
    let mac: String
    /// "local" or "remote".
    let type: String
    let isStatic: Bool
    let vtep: String?
    let port: String?
    let vlan: Int?

    var description: String {
        "\(logicalSwitch) \(mac) \(type)\(isStatic ? " static" : "")"
            + (vtep.map { " vtep \($0)" } ?? "") + (port.map { " port \($0)" } ?? "")
            + (vlan.map { " vlan \($0)" } ?? "")
    }
}

extension LabVTEPD {
    /// vtepd's MAC table, every logical switch, parsed from `show mac-table --json`.
    func macTable() throws -> [LabMACEntry] {
        let text = try show("mac-table", json: true)
        guard let rows = try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [[String: Any]]
        else { throw LabError(description: "vtepd show mac-table --json printed: \(text)") }
        return try rows.map { row in
            guard let sw = row["switch"] as? String, let mac = row["mac"] as? String,
                let type = row["type"] as? String
            else { throw LabError(description: "mac-table row without switch/mac/type: \(row)") }
            return LabMACEntry(
                logicalSwitch: sw, mac: mac.lowercased(), type: type,
                isStatic: row["static"] as? Bool ?? false, vtep: row["vtep"] as? String,
                port: row["port"] as? String, vlan: row["vlan"] as? Int)
        }
    }

    /// The MAC table's entry for `mac` (any switch), or nil.
    func macEntry(_ mac: String) throws -> LabMACEntry? {
        try macTable().first { $0.mac == mac.lowercased() }
    }

    /// `show counters --json`, parsed.
    func counters() throws -> [String: Any] {
        let text = try show("counters", json: true)
        guard let report = try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any]
        else { throw LabError(description: "vtepd show counters --json printed: \(text)") }
        return report
    }

    /// The drop counter named `reason` (`no_binding`, `static_mac_conflict`, …).
    func dropCount(_ reason: String) throws -> Int {
        let report = try counters()
        guard let drops = report["drops"] as? [[String: Any]],
            let entry = drops.first(where: { $0["reason"] as? String == reason }),
            let count = entry["count"] as? Int
        else { throw LabError(description: "vtepd counters have no drop reason \(reason)") }
        return count
    }

    /// The counters of logical switch `name` (`learned`, `moves`, `flooded`, …).
    func switchCounters(_ name: String) throws -> [String: Int] {
        let report = try counters()
        guard let switches = report["switches"] as? [[String: Any]],
            let found = switches.first(where: { $0["name"] as? String == name })
        else { throw LabError(description: "vtepd counters have no logical switch \(name)") }
        return found.compactMapValues { $0 as? Int }
    }

    /// The remote VTEPs vtepd counts traffic for: configured and discovered.
    func countedVTEPs() throws -> [String] {
        let report = try counters()
        return (report["vteps"] as? [[String: Any]] ?? []).compactMap { $0["ip"] as? String }
    }

    /// `show configuration --json`, parsed.
    func configuration() throws -> [String: Any] {
        let text = try show("configuration", json: true)
        guard let report = try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any]
        else { throw LabError(description: "vtepd show configuration --json printed: \(text)") }
        return report
    }

    /// vtepd's effective bindings as (port, VLAN or 0 for untagged, logical switch), sorted.
    func bindings() throws -> [LabBinding] {
        let report = try configuration()
        return (report["bindings"] as? [[String: Any]] ?? []).compactMap { b in
            guard let port = b["port"] as? String, let sw = b["switch"] as? String else {
                return nil
            }
            return LabBinding(port: port, vlan: b["vlan"] as? Int ?? 0, logicalSwitch: sw)
        }.sorted { ($0.port, $0.vlan) < ($1.port, $1.vlan) }
    }

    /// The effective replication of logical switch `name`: mode (`multicast`, `head-end`,
    /// `service-node`) and locator addresses; nil while vtepd does not forward the switch.
    func replication(of name: String) throws -> (mode: String, locators: [String])? {
        let report = try configuration()
        guard let switches = report["switches"] as? [[String: Any]],
            let found = switches.first(where: { $0["name"] as? String == name }),
            let replication = found["replication"] as? [String: Any],
            let mode = replication["mode"] as? String
        else { return nil }
        let locators = (replication["locators"] as? [[String: Any]] ?? []).compactMap {
            $0["ip"] as? String
        }
        return (mode, locators.sorted())
    }

    /// Adds logical switch `name` with `tunnel_key=vni`, head-end (source_node) replication to
    /// `remotes`, and binds it to `vlan` on vtepd's access port.
    func addSwitch(_ name: String, vni: Int, vlan: Int, replicatingTo remotes: [String]) throws {
        try control(["--may-exist", "add-ls", name])
        try control([
            "set", "Logical_Switch", name, "tunnel_key=\(vni)", "replication_mode=source_node",
        ])
        for remote in remotes { try control(["add-mcast-remote", name, "unknown-dst", remote]) }
        try control(["bind-ls", physicalSwitch, site.accessInterface, "\(vlan)", name])
    }
}

/// One effective VLAN binding as `vtepd show configuration` reports it (VLAN 0 = untagged).
struct LabBinding: Sendable, Equatable, CustomStringConvertible {
    let port: String
    let vlan: Int
    let logicalSwitch: String

    var description: String { "\(port) VLAN \(vlan) → \(logicalSwitch)" }
}
