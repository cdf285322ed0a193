import ControlAPI
import MetricsEndpoint
import Packet
import TestSupport
import Testing

/// The exposition of a sample (names, labels, values, types) and the HTTP endpoint over a
/// real socket on 127.0.0.1.
@Suite struct MetricsEndpointTests {
    static var suppressing: CountersReport.LogicalSwitch {
        var s = CountersReport.LogicalSwitch(name: "arp", vni: 7)
        s.neighbourAnswered = 12
        s.neighbourFlooded = 3
        return s
    }

    static let sample = {
        var sample = plainSample
        sample.bfdReceived = 30
        sample.bfdSent = 31
        sample.bfdBad = 2
        sample.bfdSessionsUp = 1
        sample.workerRealtimeYields = 6
        return sample
    }()

    static let plainSample = MetricsSample(
        counters: CountersReport(
            switches: [
                .init(
                    name: "web", vni: 5001, fromAccess: 1200, fromTunnel: 980, toAccess: 975,
                    encapsulated: 1190, flooded: 10, drops: 5, learned: 4, moves: 1,
                    learningRefused: 0),
                .init(name: "db", vni: 16_777_215, learningRefused: UInt64.max),
                suppressing,
            ],
            ports: [.init(name: "eth1", rxFrames: 1200, txFrames: 975, drops: 3)],
            vteps: [
                .init(
                    ip: "192.0.2.2", encapsulation: "vxlan", txFrames: 1190, rxFrames: 980,
                    resolved: true),
                .init(ip: "2001:db8::2", encapsulation: "gre", resolved: false),
            ],
            drops: [
                .init(reason: "unknown_vni", count: 2), .init(reason: "no_binding", count: 3),
                .init(reason: "io_error", count: 4),
            ],
            malformed: [.init(reason: "vxlan_i_flag_clear", count: 1)],
            offloads: [.init(reason: "super_frames_in", count: 7)]),
        macEntries: ["web": 6], databaseConnected: true, localMACPublishing: false,
        workerBatches: 42, workerBusySeconds: 1.5,
        managers: ["ssl:10.0.0.5:6640": true, "ssl:10.0.0.6:6640": false],
        limitRefusals: ["control_request_rate": 9, "ovsdb_message_size": 2])

    @Test func everySeriesHasItsConventionalNameLabelsAndValue() {
        let text = Self.sample.exposition()
        let lines = Set(text.split(separator: "\n").map(String.init))
        for expected in [
            #"vtep_frames_total{switch="web",vni="5001",direction="from_access"} 1200"#,
            #"vtep_frames_total{switch="web",vni="5001",direction="from_tunnel"} 980"#,
            #"vtep_frames_total{switch="web",vni="5001",direction="to_access"} 975"#,
            #"vtep_frames_total{switch="web",vni="5001",direction="to_tunnel"} 1190"#,
            #"vtep_flooded_frames_total{switch="web",vni="5001"} 10"#,
            #"vtep_switch_dropped_frames_total{switch="web",vni="5001"} 5"#,
            #"vtep_macs_learned_total{switch="web",vni="5001"} 4"#,
            #"vtep_mac_moves_total{switch="web",vni="5001"} 1"#,
            #"vtep_mac_entries{switch="web",vni="5001"} 6.0"#,
            #"vtep_mac_entries{switch="db",vni="16777215"} 0.0"#,
            // Beyond Int64: held at its largest value rather than wrapped negative.
            #"vtep_mac_learning_refused_total{switch="db",vni="16777215"} 9223372036854775807"#,
            #"vtep_port_frames_total{port="eth1",direction="rx"} 1200"#,
            #"vtep_port_frames_total{port="eth1",direction="tx"} 975"#,
            #"vtep_port_dropped_frames_total{port="eth1"} 3"#,
            #"vtep_tunnel_frames_total{vtep="192.0.2.2",encapsulation="vxlan",direction="rx"} 980"#,
            #"vtep_tunnel_frames_total{vtep="192.0.2.2",encapsulation="vxlan",direction="tx"} 1190"#,
            #"vtep_tunnel_next_hop_resolved{vtep="192.0.2.2",encapsulation="vxlan"} 1.0"#,
            #"vtep_tunnel_next_hop_resolved{vtep="2001:db8::2",encapsulation="gre"} 0.0"#,
            #"vtep_dropped_frames_total{reason="unknown_vni"} 2"#,
            #"vtep_dropped_frames_total{reason="no_binding"} 3"#,
            "vtep_io_errors_total 4",
            #"vtep_malformed_frames_total{reason="vxlan_i_flag_clear"} 1"#,
            "vtep_super_frames_in_total 7",
            "vtep_database_connected 1.0",
            "vtep_local_mac_publishing_ok 0.0",
            "vtep_worker_batches_total 42",
            "vtep_worker_busy_seconds_total 1.5",
            "vtep_worker_realtime_yields_total 6",
            #"vtep_manager_connected{target="ssl:10.0.0.5:6640"} 1.0"#,
            #"vtep_manager_connected{target="ssl:10.0.0.6:6640"} 0.0"#,
            #"vtep_limit_refusals_total{limit="control_request_rate"} 9"#,
            #"vtep_neighbour_requests_total{switch="arp",vni="7",outcome="answered"} 12"#,
            #"vtep_neighbour_requests_total{switch="arp",vni="7",outcome="flooded"} 3"#,
            #"vtep_limit_refusals_total{limit="ovsdb_message_size"} 2"#,
            #"vtep_bfd_packets_total{direction="rx"} 30"#,
            #"vtep_bfd_packets_total{direction="tx"} 31"#,
            #"vtep_bfd_packets_total{direction="bad"} 2"#,
            "vtep_bfd_sessions_up 1.0",
            "# TYPE vtep_frames_total counter",
            "# TYPE vtep_mac_entries gauge",
            "# TYPE vtep_worker_busy_seconds_total counter",
        ] {
            #expect(lines.contains(expected), "missing: \(expected)")
        }
        // A switch that never suppressed has no such series.
        #expect(!text.contains(#"vtep_neighbour_requests_total{switch="web""#))
        // io_error counts calls, not frames: never among the dropped frames.
        #expect(!text.contains(#"reason="io_error""#))
        // Every malformed reason is a series from the start, zero until it happens.
        for reason in Malformed.allCases.map(\.counterName) where reason != "vxlan_i_flag_clear" {
            #expect(lines.contains(#"vtep_malformed_frames_total{reason="\#(reason)"} 0"#))
        }
        // One HELP and one TYPE per family.
        #expect(text.components(separatedBy: "# TYPE vtep_frames_total ").count == 2)
    }

    /// A server on a free port of 127.0.0.1. A port free a moment ago can be held for a few
    /// milliseconds by a child another test is spawning (its copy of the probe's socket, until
    /// it execs): then another port is taken, up to five times.
    static func serverOnAFreePort(_ body: @escaping @Sendable () async -> String) async throws
        -> (MetricsServer, UInt16)
    {
        for _ in 0..<4 {
            let port = try freeLoopbackPort()
            let endpoint = IPEndpoint(address: .v4(IPv4Address(127, 0, 0, 1)), port: port)
            if let server = try? await MetricsServer.start(on: endpoint, render: body) {
                return (server, port)
            }
        }
        let port = try freeLoopbackPort()
        let endpoint = IPEndpoint(address: .v4(IPv4Address(127, 0, 0, 1)), port: port)
        return (try await MetricsServer.start(on: endpoint, render: body), port)
    }

    @Test func servesMetricsOverHTTPAndRefusesOtherPaths() async throws {
        let (server, port) = try await Self.serverOnAFreePort { "vtep_test_total 1\n" }
        let endpoint = IPEndpoint(address: .v4(IPv4Address(127, 0, 0, 1)), port: port)
        let ok = try await loopbackHTTP(
            port, "GET /metrics HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        #expect(ok.hasPrefix("HTTP/1.1 200 OK\r\n"))
        #expect(ok.contains("Content-Type: text/plain; version=0.0.4; charset=utf-8\r\n"))
        #expect(ok.hasSuffix("\r\n\r\nvtep_test_total 1\n"))
        let missing = try await loopbackHTTP(
            port, "GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        #expect(missing.hasPrefix("HTTP/1.1 404 Not Found\r\n"))
        let post = try await loopbackHTTP(
            port,
            "POST /metrics HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        #expect(post.hasPrefix("HTTP/1.1 405 Method Not Allowed\r\n"))
        #expect(server.scrapesAnswered == 1)

        // The port is taken: a second server is refused in words an operator can act on.
        await #expect(throws: MetricsServerError.self) {
            _ = try await MetricsServer.start(on: endpoint) { "" }
        }
        do {
            _ = try await MetricsServer.start(on: endpoint) { "" }
        } catch {
            #expect(
                error.description
                    == "cannot listen on 127.0.0.1:\(port): port \(port) is in use by another program"
            )
        }
        await server.stop()
        try await waitUntilClosed(loopbackPort: port)
        // Stopped: the port is free again.
        let again = try await MetricsServer.start(on: endpoint) { "" }
        await again.stop()
    }

    @Test func anAddressThatIsNotThisHostsIsRefused() async throws {
        let endpoint = IPEndpoint(address: .v4(IPv4Address(192, 0, 2, 77)), port: 9100)
        do {
            let server = try await MetricsServer.start(on: endpoint) { "" }
            await server.stop()
            Issue.record("listened on an address of no interface")
        } catch {
            #expect(
                error.description
                    == "cannot listen on 192.0.2.77:9100: 192.0.2.77 is not an address of this host"
            )
        }
    }

    @Test func endpointsParseOnlyAsIPAndPort() {
        #expect(IPEndpoint("192.0.2.1:9100")?.description == "192.0.2.1:9100")
        #expect(IPEndpoint("[2001:db8::1]:9100")?.description == "[2001:db8::1]:9100")
        for bad in [
            "192.0.2.1", "192.0.2.1:", "192.0.2.1:0", "192.0.2.1:65536", "192.0.2.1:09100",
            "192.0.2.1:+80", "2001:db8::1:9100", "[192.0.2.1]:80", "[]:80", "host:80", ":80",
            "192.0.2.1:80 ", "",
        ] {
            #expect(IPEndpoint(bad) == nil, "\(bad)")
        }
    }
}
