import Foundation
import Gateway
import OVSDB
import Packet
import Testing

/// vtepd.conf and the command line: one parser for both, errors with the line and the reason.
@Suite struct BootstrapSettingsTests {
    func parse(_ text: String) throws -> BootstrapSettings {
        try BootstrapSettings(file: text, path: "vtepd.conf")
    }

    func refusal(_ text: String) -> String? {
        do {
            _ = try parse(text)
            return nil
        } catch { return "\(error)" }
    }

    @Test func theShippedFileParsesAndLeavesTheRequiredSettingsToTheAdmin() throws {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("../../etc/vtep-gateway/vtepd.conf")
        let settings = try parse(String(contentsOf: url, encoding: .utf8))
        #expect(settings.stateRoot == "/var/lib/vtep-gateway")
        #expect(settings.underlay == nil)
        #expect(throws: BootstrapSettingsError.self) {
            try settings.gatewayOptions(hostName: "gw", dhcpHook: "/hook")
        }
    }

    @Test func everySettingWithCommentsListsAndBlanks() throws {
        let settings = try parse(
            """
            # bootstrap
              state-root = /srv/vtep   # trailing comment
            physical-switch=gw1
            tunnel-ip = 192.0.2.1
            tunnel-ip = 2001:db8::1
            underlay = eth1
            port = eth2 eth3
            port = eth4
            database-remote = ptcp:6640
            control = /run/vtepd.ctl
            vxlan-port = 8472
            ttl = 32
            multicast-ttl = 4
            log-level = DEBUG
            appliance-root = /
            \r
            """)
        let options = try settings.gatewayOptions(hostName: "host", dhcpHook: "/usr/lib/hook")
        #expect(options.stateRoot == "/srv/vtep")
        #expect(options.physicalSwitch == "gw1")
        #expect(options.tunnelIPs == [IPAddress("192.0.2.1")!, IPAddress("2001:db8::1")!])
        #expect(options.ports == ["eth2", "eth3", "eth4"])
        #expect(options.databaseRemotes == ["ptcp:6640"])
        #expect(options.controlSocket == "/run/vtepd.ctl")
        #expect(options.dataPlane.underlay == "eth1")
        #expect(options.dataPlane.vxlanPort == 8472)
        #expect(options.dataPlane.unicastTTL == 32)
        #expect(options.dataPlane.multicastTTL == 4)
        #expect(settings.logLevel == .debug)
        #expect(options.dhcpHook == "/usr/lib/hook")
    }

    @Test func defaults() throws {
        let options = try parse("underlay = eth1\ntunnel-ip = 192.0.2.1\n")
            .gatewayOptions(hostName: "gw", dhcpHook: "/hook")
        #expect(options.stateRoot == "/var/lib/vtep-gateway")
        #expect(options.controlSocket == "/var/lib/vtep-gateway/vtepd.ctl")
        #expect(options.physicalSwitch == "gw")
        #expect(options.ports.isEmpty)
        #expect(options.database == nil)
        #expect(options.dataPlane.vxlanPort == 4789)
        #expect(options.dataPlane.unicastTTL == 64)
        #expect(options.dataPlane.multicastTTL == 1)
    }

    @Test func badLinesAreRefusedWithTheirNumberAndReason() {
        #expect(
            refusal("underlay = eth1\nportt = eth2\n")?.hasPrefix(
                "vtepd.conf:2: unknown setting \"portt\" (known: state-root, ") == true)
        #expect(
            refusal("\n\nunderlay eth1")
                == "vtepd.conf:3: expected KEY = VALUE, found \"underlay eth1\"")
        #expect(
            refusal("underlay = eth1\n# x\nunderlay = eth2")
                == "vtepd.conf:3: underlay is set twice (first on line 1)")
        #expect(refusal("underlay =") == "vtepd.conf:1: underlay needs a value")
        #expect(refusal("underlay = eth1 eth2") == "vtepd.conf:1: underlay takes one value, not 2")
        #expect(
            refusal("tunnel-ip = 239.1.1.1")
                == "vtepd.conf:1: tunnel-ip 239.1.1.1 is not a unicast IPv4 or IPv6 address")
        #expect(refusal("tunnel-ip = 0.0.0.0")?.contains("not a unicast") == true)
        #expect(refusal("tunnel-ip = ::")?.contains("not a unicast") == true)
        #expect(
            refusal("vxlan-port = 0") == "vtepd.conf:1: vxlan-port 0 is not a UDP port (1–65535)")
        #expect(refusal("vxlan-port = 65536")?.contains("not a UDP port") == true)
        #expect(refusal("ttl = 256") == "vtepd.conf:1: ttl 256 is not a TTL (1–255)")
        #expect(refusal("multicast-ttl = -1")?.contains("not a TTL") == true)
        #expect(
            refusal("state-root = var/lib")
                == "vtepd.conf:1: state-root var/lib is not an absolute path")
        #expect(
            refusal("port = averyveryverylongname")
                == "vtepd.conf:1: port averyveryverylongname is not an interface name")
        #expect(
            refusal("log-level = loud")?.hasPrefix(
                "vtepd.conf:1: log-level loud is not one of trace, debug") == true)
        #expect(
            refusal("database = http://x")?.hasPrefix("vtepd.conf:1: database http://x: ") == true)
    }

    @Test func incompleteOrContradictorySettingsAreRefusedByName() throws {
        func options(_ text: String) -> String? {
            do {
                _ = try parse(text).gatewayOptions(hostName: "gw", dhcpHook: "/hook")
                return nil
            } catch { return "\(error)" }
        }
        #expect(
            options("tunnel-ip = 192.0.2.1")
                == "no underlay: set underlay (the interface tunnels leave on)")
        #expect(options("underlay = eth1") == "no tunnel-ip: give at least one")
        #expect(
            options("underlay = eth1\ntunnel-ip = 192.0.2.1 192.0.2.2")
                == "give at most one IPv4 and one IPv6 tunnel-ip")
        #expect(
            options("underlay = eth1\ntunnel-ip = 192.0.2.1\nport = eth2 eth2")
                == "access port eth2 is named twice")
        #expect(
            options("underlay = eth1\ntunnel-ip = 192.0.2.1\nport = eth1")
                == "eth1 cannot be both the underlay and an access port")
        #expect(options("underlay = eth1\ntunnel-ip = 192.0.2.1\nport = eth2") == nil)
        #expect(
            options("underlay = eth1\ntunnel-ip = 192.0.2.1\nmetrics-listen = 192.0.2.1:9100")
                == "metrics-listen 192.0.2.1:9100 is a tunnel address; give a management address")
    }

    @Test func metricsListenIsAnEndpoint() throws {
        let options = try parse(
            "underlay = eth1\ntunnel-ip = 192.0.2.1\nmetrics-listen = [2001:db8::10]:9100"
        ).gatewayOptions(hostName: "gw", dhcpHook: "/hook")
        #expect(options.metricsListen?.port == 9100)
        #expect(options.metricsListen?.address == IPAddress("2001:db8::10"))
        #expect(
            refusal("metrics-listen = nowhere")
                == "vtepd.conf:1: metrics-listen nowhere is not IP:PORT (e.g. 192.0.2.10:9100)")
    }

    @Test func theMACTableLimitAndBusyPollingReachTheDataPlane() throws {
        let defaults = try parse("underlay = eth1\ntunnel-ip = 192.0.2.1")
            .gatewayOptions(hostName: "gw", dhcpHook: "/hook")
        #expect(defaults.dataPlane.macTableLimit == 1 << 20)
        #expect(defaults.dataPlane.busyPollMicroseconds == 50)
        #expect(defaults.dataPlane.realtimePriority == 0)
        #expect(defaults.dataPlane.vxlanReceive == .socket)
        #expect(defaults.dataPlane.vxlanTransmit == .auto)
        #expect(defaults.dataPlane.vxlanTrains == .auto)
        let options = try parse(
            "underlay = eth1\ntunnel-ip = 192.0.2.1\nmac-table-limit = 2000000\nbusy-poll-us = 0"
                + "\ndatapath-priority = 1\nvxlan-receive = ring\nvxlan-transmit = tunnel-gso"
                + "\nvxlan-trains = udp-socket"
        ).gatewayOptions(hostName: "gw", dhcpHook: "/hook")
        #expect(options.dataPlane.vxlanTrains == .udpSocket)
        #expect(
            refusal("vxlan-trains = raw")
                == "vtepd.conf:1: vxlan-trains raw is not auto, packet-socket or udp-socket")
        #expect(options.dataPlane.macTableLimit == 2_000_000)
        #expect(options.dataPlane.busyPollMicroseconds == 0)
        #expect(options.dataPlane.realtimePriority == 1)
        #expect(options.dataPlane.vxlanReceive == .ring)
        #expect(options.dataPlane.vxlanTransmit == .tunnelGSO)
        #expect(
            refusal("vxlan-transmit = gso")
                == "vtepd.conf:1: vxlan-transmit gso is not auto, trains or tunnel-gso")
        #expect(
            refusal("vxlan-receive = xdp")
                == "vtepd.conf:1: vxlan-receive xdp is not socket or ring")
        #expect(
            refusal("datapath-priority = 100")
                == "vtepd.conf:1: datapath-priority 100 is not a real-time priority from 0 to 99"
                + " (0: the normal scheduler)")
        #expect(
            refusal("datapath-priority = fifo")
                == "vtepd.conf:1: datapath-priority fifo is not a real-time priority from 0 to 99"
                + " (0: the normal scheduler)")
        #expect(
            refusal("mac-table-limit = 0")
                == "vtepd.conf:1: mac-table-limit 0 is not a whole number from 1 to 16777216")
        #expect(
            refusal("mac-table-limit = 1M")
                == "vtepd.conf:1: mac-table-limit 1M is not a whole number from 1 to 16777216")
        #expect(
            refusal("busy-poll-us = 10001")
                == "vtepd.conf:1: busy-poll-us 10001 is not a whole number of microseconds from 0 to 10000"
        )
    }

    @Test func theCommandLineOverridesTheFileAListAsAWhole() throws {
        let file = try parse("underlay = eth1\ntunnel-ip = 192.0.2.1\nport = eth2 eth3\nttl = 9")
        var commandLine = BootstrapSettings()
        try commandLine.set(.port, ["eth7"])
        try commandLine.set(.underlay, ["eth9"])
        let merged = file.overridden(by: commandLine)
        #expect(merged.ports == ["eth7"])
        #expect(merged.underlay == "eth9")
        #expect(merged.tunnelIPs == [IPAddress("192.0.2.1")!])
        #expect(merged.ttl == 9)
        #expect(file.overridden(by: BootstrapSettings()) == file)
    }

    @Test func aRefusedValueChangesNothing() throws {
        var settings = try parse("ttl = 9")
        #expect(throws: BootstrapSettingsError("ttl 0 is not a TTL (1–255)")) {
            try settings.set(.ttl, ["0"])
        }
        #expect(settings.ttl == 9)
    }
}
