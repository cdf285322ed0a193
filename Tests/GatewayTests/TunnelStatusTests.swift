import Forwarding
import OVSDB
import Packet
import SwitchControl
import Testing

/// The Tunnel rows vtepd keeps per remote VTEP, against a real ovsdb-server: created as
/// ovs-vtep creates them, rewritten only when something changed, removed with the VTEP.
@Suite struct TunnelStatusTests {
    @Test func tunnelRowsFollowTheRemoteVTEPsAndTheirBFDStatus() async throws {
        try await withServer { fixture in
            let client = try await fixture.connectedClient()
            defer { Task { await client.stop() } }
            let writer = TunnelStatusWriter(
                client: client, physicalSwitch: "ps0", localIP: "10.0.0.1")
            let idle = [TunnelStatus(remote: "192.0.2.2", enabled: false, bfd: nil)]
            // No Physical_Switch yet: nothing to write.
            #expect(try await writer.write(idle) == [])
            try await fixture.vtepCtl("add-ps", "ps0")
            try await fixture.vtepCtl("add-ls", "ls0")
            try await fixture.vtepCtl("add-ucast-remote", "ls0", "00:00:5e:00:53:01", "192.0.2.2")
            // A VTEP without a Physical_Locator row gets no tunnel (as ovs-vtep).
            let withUnknown = idle + [TunnelStatus(remote: "192.0.2.9", enabled: true, bfd: nil)]
            #expect(try await writer.write(withUnknown) == ["Tunnel to 192.0.2.2 created"])
            #expect(try await writer.write(withUnknown) == [], "unchanged rows are not rewritten")
            let tunnel = try await fixture.vtepCtl("--bare", "--columns=_uuid", "find", "Tunnel")
                .trimmingCharacters(in: .whitespacesAndNewlines)
            #expect(!tunnel.isEmpty && !tunnel.contains("\n"))
            #expect(
                try await fixture.vtepCtl("get", "Physical_Switch", "ps0", "tunnels")
                    == "[\(tunnel)]\n")
            let local = try await fixture.vtepCtl("--bare", "get", "Tunnel", tunnel, "local")
                .trimmingCharacters(in: .whitespacesAndNewlines)
            #expect(
                try await fixture.vtepCtl("get", "Physical_Locator", local, "dst_ip")
                    == "\"10.0.0.1\"\n")
            #expect(
                try await fixture.vtepCtl("get", "Tunnel", tunnel, "bfd_config_local")
                    == "{bfd_dst_ip=\"169.254.1.0\", bfd_dst_mac=\"00:23:20:00:00:01\"}\n")
            #expect(
                try await fixture.vtepCtl("get", "Tunnel", tunnel, "bfd_status")
                    == "{enabled=\"false\"}\n")

            let up = BFDStatus(
                state: .up, forwarding: true, diagnostic: .none, remoteState: .up,
                remoteDiagnostic: .none, flapCount: 1)
            let running = [TunnelStatus(remote: "192.0.2.2", enabled: true, bfd: up)]
            #expect(try await writer.write(running) == ["Tunnel to 192.0.2.2: bfd_status"])
            #expect(
                try await fixture.vtepCtl("get", "Tunnel", tunnel, "bfd_status")
                    == "{diagnostic=\"No Diagnostic\", enabled=\"true\", forwarding=\"true\","
                    + " remote_diagnostic=\"No Diagnostic\", remote_state=up, state=up}\n")
            // Someone edits our bfd_config_local: it is put back.
            try await fixture.vtepCtl(
                "set", "Tunnel", tunnel, "bfd_config_local:bfd_dst_ip=1.2.3.4")
            #expect(try await writer.write(running) == ["Tunnel to 192.0.2.2: bfd_config_local"])

            // The VTEP goes: its tunnel goes with it.
            #expect(try await writer.write([]) == ["1 tunnel(s) removed"])
            #expect(try await fixture.vtepCtl("--bare", "--columns=_uuid", "find", "Tunnel") == "")
        }
    }
}
