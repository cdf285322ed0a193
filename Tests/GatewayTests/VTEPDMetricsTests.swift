import ControlAPI
import Datapath
import Foundation
import TestSupport
import Testing

/// vtepd's metrics endpoint scraped by a real Prometheus (Debian's `prometheus`), started by
/// the test in vtepd's namespace with a 1 s scrape interval: after known traffic, its query
/// API returns the frame counters `vtepd show counters --json` reports.
@Suite("vtepd metrics scraped by Prometheus", .serialized)
struct VTEPDMetricsTests {
    static let metricsPort = 9100
    static let prometheusPort: UInt16 = 9090

    @Test("Prometheus's query API returns the frame counters vtepd show counters reports")
    func prometheusScrapesTheCounters() async throws {
        try await Lab.runOnOwnThread { lab in
            // No Prometheus is a failure that says so, never a skip: install-deps.sh installs it.
            guard let prometheus = Lab.executable("prometheus") else {
                throw LabError(
                    description: "prometheus is not installed (appliance/install-deps.sh installs"
                        + " Debian's prometheus); this test cannot run without it")
            }
            let topology = try lab.topology([.gateway, .kernel(vni: 5001)])
            let (a, b) = (topology.sites[0], topology.sites[1])
            let vtepd = try lab.startVTEPD(
                at: a, vni: 5001,
                extraArguments: ["--metrics-listen", "127.0.0.1:\(Self.metricsPort)"])
            try lab.replicate(from: a, to: [b], vtepd: vtepd)
            try lab.replicate(from: b, to: [a])

            // Prometheus in vtepd's namespace: its own directory, its own port on that
            // namespace's loopback; stopped by PID when the lab ends, failed or not.
            let directory = lab.file("prometheus")
            try FileManager.default.createDirectory(
                at: directory.appendingPathComponent("data"), withIntermediateDirectories: true)
            let configuration = directory.appendingPathComponent("prometheus.yml")
            try """
            global:
              scrape_interval: 1s
              scrape_timeout: 1s
              evaluation_interval: 1s
            scrape_configs:
              - job_name: vtepd
                static_configs:
                  - targets: ['127.0.0.1:\(Self.metricsPort)']
            """.write(to: configuration, atomically: true, encoding: .utf8)
            let server = try lab.start(
                "prometheus",
                [
                    prometheus, "--config.file=\(configuration.path)",
                    "--storage.tsdb.path=\(directory.appendingPathComponent("data").path)",
                    "--web.listen-address=127.0.0.1:\(Self.prometheusPort)",
                ], in: a.namespace)
            func query(_ expression: String) throws -> [(labels: [String: String], value: String)] {
                try server.requireRunning()
                return try Self.query(expression, in: a.namespace)
            }

            // The first scrape succeeded: the exposition is one Prometheus accepts.
            try waitUntil(
                "Prometheus's first successful scrape of vtepd", timeout: .seconds(60),
                lastSeen: server.tail()
            ) {
                (try? query(#"up{job="vtepd"}"#))?.first?.value == "1"
            }

            // Known traffic: 10 echo requests from the host behind vtepd, answered.
            let ping = try lab.ping(from: a.hostNamespace, to: b.hostIPv4, count: 10)
            #expect(ping == LabPingResult(transmitted: 10, received: 10))
            // And 3 broadcasts nobody answers: in from the access port, none back to it, so
            // each direction has its own value and a series under the wrong one cannot match.
            for _ in 0..<3 { try lab.sendBroadcastPing(from: a.hostNamespace, to: "10.0.0.255") }

            // Once vtepd's counters are still (no more traffic), Prometheus's next scrape
            // must return exactly what `vtepd show counters --json` says.
            let metrics = [
                ("from_access", \CountersReport.LogicalSwitch.fromAccess),
                ("to_tunnel", \CountersReport.LogicalSwitch.encapsulated),
                ("from_tunnel", \CountersReport.LogicalSwitch.fromTunnel),
                ("to_access", \CountersReport.LogicalSwitch.toAccess),
            ]
            func switchCounters() throws -> CountersReport.LogicalSwitch {
                guard
                    let found = try vtepd.countersReport().switches.first(where: {
                        $0.name == vtepd.logicalSwitch
                    })
                else { throw LabError(description: "no \(vtepd.logicalSwitch) in show counters") }
                return found
            }
            var shown = try switchCounters()
            try waitUntil(
                "the same counters in Prometheus as in vtepd show counters", timeout: .seconds(60)
            ) {
                let now = try switchCounters()
                defer { shown = now }
                guard now == shown else { return false }
                for (direction, field) in metrics {
                    let series = try query(
                        #"vtep_frames_total{switch="\#(vtepd.logicalSwitch)",direction="\#(direction)"}"#
                    )
                    guard series.count == 1, series[0].value == String(now[keyPath: field])
                    else { return false }
                }
                return true
            }
            // At least the known traffic was counted: 10 requests in, 10 replies out.
            #expect(shown.fromAccess >= shown.toAccess + 3)
            #expect(shown.fromAccess >= 13 && shown.encapsulated >= 10)
            #expect(shown.fromTunnel >= 10 && shown.toAccess >= 10)
            let vni = try query(
                #"vtep_frames_total{switch="\#(vtepd.logicalSwitch)",direction="from_access"}"#)
            #expect(vni.first?.labels["vni"] == "5001")
            // The remote VTEP's series too, by its address.
            let tunnel = try query(
                #"vtep_tunnel_frames_total{vtep="\#(b.underlayIPv4)",direction="tx"}"#)
            #expect(tunnel.count == 1 && (UInt64(tunnel.first?.value ?? "") ?? 0) >= 10)
            // The worker's load and the database's state are there.
            #expect(try query("vtep_database_connected").first?.value == "1")
            #expect((Double(try query("vtep_worker_batches_total").first?.value ?? "") ?? 0) >= 10)
            #expect(
                (Double(try query("vtep_worker_busy_seconds_total").first?.value ?? "") ?? 0) > 0)
        }
    }

    /// `GET /api/v1/query?query=EXPRESSION` to the Prometheus in `namespace`: each series of
    /// the instant vector with its labels and value.
    static func query(_ expression: String, in namespace: String) throws -> [(
        labels: [String: String], value: String
    )] {
        var allowed = CharacterSet.alphanumerics
        allowed.insert(charactersIn: "-._~")
        let encoded = expression.addingPercentEncoding(withAllowedCharacters: allowed)!
        let response = try http(
            "GET /api/v1/query?query=\(encoded) HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
            port: prometheusPort, in: namespace)
        guard let split = response.range(of: "\r\n\r\n"), response.hasPrefix("HTTP/1.1 200") else {
            throw LabError(description: "Prometheus answered \(response.prefix(300))")
        }
        let body = Data(response[split.upperBound...].utf8)
        guard let document = try JSONSerialization.jsonObject(with: body) as? [String: Any],
            document["status"] as? String == "success",
            let data = document["data"] as? [String: Any],
            let result = data["result"] as? [[String: Any]]
        else { throw LabError(description: "Prometheus's answer is not a result: \(response)") }
        return result.compactMap { series in
            guard let labels = series["metric"] as? [String: String],
                let value = series["value"] as? [Any], value.count == 2,
                let text = value[1] as? String
            else { return nil }
            return (labels, text)
        }
    }

    /// One HTTP exchange with 127.0.0.1:`port` of `namespace`, from a thread that entered it.
    static func http(_ request: String, port: UInt16, in namespace: String) throws -> String {
        let outcome = NSLock()
        nonisolated(unsafe) var result: Result<String, any Error>? = nil
        let done = DispatchSemaphore(value: 0)
        let thread = Thread {
            let answer = Result {
                try NetworkNamespace.enterOnCurrentThread(path: "/run/netns/\(namespace)")
                return try loopbackHTTP(port, request)
            }
            outcome.withLock { result = answer }
            done.signal()
        }
        thread.start()
        done.wait()
        return try outcome.withLock { result! }.get()
    }
}
