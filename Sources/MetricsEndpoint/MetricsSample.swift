import ControlAPI
import Packet
import Prometheus

/// What one scrape exposes, read from vtepd when the scrape arrives: the counters the worker
/// keeps (`CountersReport`, as `show switch statistics` shows them) and the state of the
/// parts around it. Every counter is an absolute total since the worker started.
public struct MetricsSample: Sendable {
    public var counters: CountersReport
    /// MAC table entries per logical switch, by name.
    public var macEntries: [String: Int]
    /// Whether vtepd follows its hardware_vtep database now.
    public var databaseConnected: Bool
    /// Whether the last round of publishing local MACs to Ucast_Macs_Local succeeded.
    public var localMACPublishing: Bool
    /// Receive batches the worker served, and the time it spent serving them.
    public var workerBatches: UInt64
    public var workerBusySeconds: Double
    /// Each controller connection (Manager `target`), and whether it is connected now.
    public var managers: [String: Bool]
    /// What vtepd refused to protect itself, by limit (`control_connections`,
    /// `control_request_size`, `control_request_rate`, `ovsdb_message_size`), since start.
    public var limitRefusals: [String: UInt64]
    /// BFD packets taken from VNI 0, sent, and refused (malformed, TTL, discriminator, no
    /// session); sessions up now.
    public var bfdReceived: UInt64 = 0
    public var bfdSent: UInt64 = 0
    public var bfdBad: UInt64 = 0
    public var bfdSessionsUp = 0
    /// Times the worker left the real-time scheduler after 2 ms busy without a pause.
    public var workerRealtimeYields: UInt64 = 0

    public init(
        counters: CountersReport, macEntries: [String: Int], databaseConnected: Bool,
        localMACPublishing: Bool, workerBatches: UInt64, workerBusySeconds: Double,
        managers: [String: Bool] = [:], limitRefusals: [String: UInt64] = [:]
    ) {
        self.managers = managers
        self.limitRefusals = limitRefusals
        self.counters = counters
        self.macEntries = macEntries
        self.databaseConnected = databaseConnected
        self.localMACPublishing = localMACPublishing
        self.workerBatches = workerBatches
        self.workerBusySeconds = workerBusySeconds
    }

    /// The Prometheus text exposition format (version 0.0.4) of this sample.
    ///
    /// A fresh registry per scrape, its counters set to the worker's totals: the worker's
    /// counters are snapshots, not events, so there is nothing to increment as frames pass,
    /// and a vtepd restart (totals back to zero) reads to Prometheus as the counter reset
    /// its `rate()` expects. Series of a switch, port or VTEP that is gone disappear.
    public func exposition() -> String {
        let registry = PrometheusCollectorRegistry()
        func counter(_ name: String, _ help: String, _ labels: [(String, String)], _ value: UInt64)
        {
            registry.makeCounter(
                descriptor: MetricNameDescriptor(
                    namespace: "vtep", metricName: name, unitName: "total", helpText: help),
                labels: labels
            ).increment(by: Int64(clamping: value))
        }
        func gauge(_ name: String, _ help: String, _ labels: [(String, String)], _ value: Double) {
            registry.makeGauge(
                descriptor: MetricNameDescriptor(
                    namespace: "vtep", metricName: name, unitName: "", helpText: help),
                labels: labels
            ).set(value)
        }

        for s in counters.switches {
            let sw = [("switch", s.name), ("vni", String(s.vni))]
            let frames =
                "Frames of a logical switch: in from access ports or tunnels, out to"
                + " access ports or tunnels (encapsulated)"
            counter("frames", frames, sw + [("direction", "from_access")], s.fromAccess)
            counter("frames", frames, sw + [("direction", "from_tunnel")], s.fromTunnel)
            counter("frames", frames, sw + [("direction", "to_access")], s.toAccess)
            counter("frames", frames, sw + [("direction", "to_tunnel")], s.encapsulated)
            counter("flooded_frames", "Frames a logical switch flooded (BUM)", sw, s.flooded)
            counter("switch_dropped_frames", "Frames a logical switch dropped", sw, s.drops)
            counter("macs_learned", "New MAC entries learned", sw, s.learned)
            counter("mac_moves", "Learned MACs that moved to another port or VTEP", sw, s.moves)
            counter(
                "mac_learning_refused", "Source MACs not learned at a MAC limit", sw,
                s.learningRefused)
            if let answered = s.neighbourAnswered, let flooded = s.neighbourFlooded {
                let help =
                    "ARP requests and neighbour solicitations from access ports that ARP/ND"
                    + " suppression answered, or flooded (address unknown)"
                counter("neighbour_requests", help, sw + [("outcome", "answered")], answered)
                counter("neighbour_requests", help, sw + [("outcome", "flooded")], flooded)
            }
            gauge(
                "mac_entries", "MAC table entries of a logical switch", sw,
                Double(macEntries[s.name] ?? 0))
        }
        for p in counters.ports {
            let port = [("port", p.name)]
            let help = "Frames received (rx) and sent (tx) on an access port"
            counter("port_frames", help, port + [("direction", "rx")], p.rxFrames)
            counter("port_frames", help, port + [("direction", "tx")], p.txFrames)
            counter("port_dropped_frames", "Frames dropped on an access port", port, p.drops)
        }
        for v in counters.vteps {
            let vtep = [("vtep", v.ip), ("encapsulation", v.encapsulation)]
            let help = "Frames received from (rx) and sent to (tx) a remote VTEP"
            counter("tunnel_frames", help, vtep + [("direction", "rx")], v.rxFrames)
            counter("tunnel_frames", help, vtep + [("direction", "tx")], v.txFrames)
            gauge(
                "tunnel_next_hop_resolved",
                "1 when frames to a remote VTEP leave through prebuilt headers (next hop known)",
                vtep, v.resolved == true ? 1 : 0)
        }
        for d in counters.drops {
            if d.reason == "io_error" {
                counter(
                    "io_errors", "Receive or send calls of the worker that failed", [], d.count)
            } else {
                counter(
                    "dropped_frames", "Frames dropped, by reason", [("reason", d.reason)], d.count)
            }
        }
        // Every reason, zero included, so that a rate over it exists before the first one.
        let malformed = Dictionary(
            counters.malformed.map { ($0.reason, $0.count) }, uniquingKeysWith: +)
        for reason in Malformed.allCases.map(\.counterName) {
            counter(
                "malformed_frames", "Frames refused as malformed, by reason",
                [("reason", reason)], malformed[reason] ?? 0)
        }
        for o in counters.offloads {
            counter(
                o.reason, "Offload counter \(o.reason) (see show switch statistics)", [], o.count)
        }
        gauge(
            "database_connected", "1 while vtepd follows its hardware_vtep database", [],
            databaseConnected ? 1 : 0)
        gauge(
            "local_mac_publishing_ok",
            "1 while publishing local MACs to Ucast_Macs_Local succeeds", [],
            localMACPublishing ? 1 : 0)
        for (target, connected) in managers.sorted(by: { $0.key < $1.key }) {
            gauge(
                "manager_connected", "1 while the controller connection (Manager row) is up",
                [("target", target)], connected ? 1 : 0)
        }
        for (limit, count) in limitRefusals.sorted(by: { $0.key < $1.key }) {
            counter(
                "limit_refusals",
                "Connections, requests or messages vtepd refused at a resource limit, by limit",
                [("limit", limit)], count)
        }
        let bfd = "BFD control packets over tunnels: received, sent, and bad (dropped)"
        counter("bfd_packets", bfd, [("direction", "rx")], bfdReceived)
        counter("bfd_packets", bfd, [("direction", "tx")], bfdSent)
        counter("bfd_packets", bfd, [("direction", "bad")], bfdBad)
        gauge("bfd_sessions_up", "BFD sessions in state up", [], Double(bfdSessionsUp))
        counter("worker_batches", "Receive batches the data-plane worker served", [], workerBatches)
        counter(
            "worker_realtime_yields",
            "Times the data-plane worker, busy 2 ms without a pause, left the real-time scheduler",
            [], workerRealtimeYields)
        registry.makeCounter(
            descriptor: MetricNameDescriptor(
                namespace: "vtep", subsystem: "worker", metricName: "busy",
                unitName: "seconds_total",
                helpText:
                    "Time the data-plane worker spent serving batches; its rate is the busy fraction"
            ), labels: []
        ).increment(by: workerBusySeconds)
        return registry.emitToString()
    }
}
