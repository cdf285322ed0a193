import Foundation

/// A tcpdump capture on one interface, written to a pcap in the lab's directory, and exact
/// counts of the frames in it that match a tshark display filter.
struct LabCapture: Sendable {
    let interface: String
    let namespace: String
    let file: URL
    let process: LabProcess
}

extension Lab {
    /// Starts tcpdump on `interface` in `namespace` with the BPF `filter` (e.g. `udp port
    /// 4789`) and returns once it is listening, so nothing sent afterwards is missed.
    /// `--immediate-mode` hands each packet to tcpdump at once (otherwise TPACKET_V3 holds
    /// them until a block fills or times out, and frames still held when tcpdump is stopped
    /// are lost: "17 received by filter, 0 captured"); `-U` writes each packet as it arrives;
    /// `-Z root` keeps tcpdump from dropping to a user that may not write the lab's directory.
    ///
    /// `bufferKiB` sets tcpdump's kernel buffer (`-B`; its default, 2 MiB, overflows when a
    /// capture takes a TCP transfer at full speed: check `droppedByKernel` then).
    func capture(
        on interface: String, in namespace: String, filter: String = "", bufferKiB: Int? = nil
    ) throws -> LabCapture {
        let pcap = file("\(interface).pcap")
        var arguments = [
            "tcpdump", "-i", interface, "--immediate-mode", "-n", "-U", "-s", "0", "-Z", "root",
            "-w", pcap.path,
        ]
        if let bufferKiB { arguments += ["-B", "\(bufferKiB)"] }
        if !filter.isEmpty { arguments.append(filter) }
        let process = try start("tcpdump-\(interface)", arguments, in: namespace)
        try process.waitForLog("listening on")
        return LabCapture(interface: interface, namespace: namespace, file: pcap, process: process)
    }

    /// A capture filter for a host's end: its ICMP, and the probes of `injectProbe`.
    static let icmpAndProbes = "icmp or ether proto 0x88b5"

    /// Stops `capture` once it holds the probe from `mac` (`injectProbe`): then it holds all
    /// that came before the probe, and no settle is needed.
    func stop(_ capture: LabCapture, atProbe mac: String) throws {
        try stop(capture, once: 1, match: "eth.src == \(mac)", settle: .zero)
    }

    /// Stops `capture` at the probe from `mac` and returns the number of its frames matching
    /// `displayFilter` (tshark syntax, e.g. `vxlan.vni == 5001 && eth.dst == ff:ff:ff:ff:ff:ff`).
    func stopAndCount(_ capture: LabCapture, matching displayFilter: String, probe mac: String)
        throws -> Int
    {
        try stop(capture, atProbe: mac)
        return try count(in: capture.file, matching: displayFilter)
    }

    /// Stops `capture` by PID after `settle`, so frames still in flight through veths and
    /// tunnels land first. Not for showing that something did not come: end the capture at a
    /// probe sent after it instead (`stop(_:atProbe:)`).
    func stop(_ capture: LabCapture, settle: Duration = .milliseconds(300)) throws {
        Thread.sleep(
            forTimeInterval: Double(settle.components.attoseconds) / 1e18
                + Double(settle.components.seconds))
        try capture.process.requireRunning()
        capture.process.stop(signal: SIGINT)
    }

    /// What tcpdump reported at its end as "N packets dropped by kernel" for a stopped
    /// `capture`: frames that crossed the interface but are not in the pcap.
    func droppedByKernel(_ capture: LabCapture) throws -> Int {
        guard capture.process.waitForExit(timeout: .seconds(10)) else {
            throw LabError(description: "tcpdump on \(capture.interface) is still running")
        }
        let log = (try? String(contentsOf: capture.process.log, encoding: .utf8)) ?? ""
        guard
            let line = log.split(separator: "\n").first(where: {
                $0.hasSuffix("packets dropped by kernel")
            }), let n = Int(line.split(separator: " ")[0])
        else {
            throw LabError(
                description: "tcpdump on \(capture.interface) reported no drop count:\n\(log)")
        }
        return n
    }

    /// The number of frames in `pcap` that match `displayFilter`, read with `tshark -r`.
    func count(in pcap: URL, matching displayFilter: String) throws -> Int {
        let result = try execute(
            [
                "tshark", "-n", "-r", pcap.path, "-Y", displayFilter, "-T", "fields", "-e",
                "frame.number",
            ])
        return result.output.split(separator: "\n").filter { !$0.isEmpty }.count
    }
}
