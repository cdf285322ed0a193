@testable import Appliance
@testable import ControlAPI
@testable import HostConfiguration
@testable import ProcessSpawning

/// Results as vtepd would map them from a two-switch gateway (documentation addresses,
/// RFC 5737 / RFC 3849 / RFC 7042).
enum Samples {
    static let macTable = [
        MACTableRow(
            logicalSwitch: "web", vni: 5001, mac: "00:00:5e:00:53:01", type: .local,
            isStatic: false, port: "eth1", vlan: 100, age: 12),
        MACTableRow(
            logicalSwitch: "web", vni: 5001, mac: "00:00:5e:00:53:02", type: .remote,
            isStatic: true, vtep: "192.0.2.2"),
        MACTableRow(
            logicalSwitch: "database", vni: 16_777_215, mac: "00:00:5e:00:53:aa", type: .local,
            isStatic: false, port: "eth2", age: 300),
        MACTableRow(
            logicalSwitch: "database", vni: 16_777_215, mac: "00:00:5e:00:53:bb", type: .remote,
            isStatic: false, vtep: "2001:db8::2", age: 0),
    ]

    static let counters = CountersReport(
        switches: [
            .init(
                name: "web", vni: 5001, fromAccess: 1200, fromTunnel: 980, toAccess: 975,
                encapsulated: 1190, flooded: 10, drops: 5, learned: 4, moves: 1, learningRefused: 0),
            .init(name: "database", vni: 16_777_215, learningRefused: 18_446_744_073_709_551_615),
        ],
        ports: [.init(name: "eth1", rxFrames: 1200, txFrames: 975, drops: 3), .init(name: "eth2")],
        vteps: [
            .init(ip: "192.0.2.2", encapsulation: "vxlan", txFrames: 1190, rxFrames: 980),
            .init(ip: "2001:db8::2", encapsulation: "gre"),
        ],
        drops: [.init(reason: "unknown_vni", count: 2), .init(reason: "no_binding", count: 3)],
        malformed: [.init(reason: "vxlan_i_flag_clear", count: 1)],
        offloads: [
            .init(reason: "super_frames_in", count: 7), .init(reason: "segments_out", count: 301),
        ])

    static let configuration = ConfigurationReport(
        physicalSwitch: "gw1", tunnelIPs: ["192.0.2.1", "2001:db8::1"], underlay: "eth0",
        ports: ["eth1", "eth2"],
        switches: [
            .init(
                name: "web", vni: 5001,
                replication: .init(
                    mode: .headEnd,
                    locators: [
                        .init(ip: "192.0.2.2"), .init(ip: "192.0.2.3", encapsulation: "gre"),
                    ]),
                macAgeing: 300),
            .init(
                name: "database", vni: 16_777_215,
                replication: .init(mode: .multicast, locators: [.init(ip: "239.1.1.1")]),
                macAgeing: 0, macLimit: 1000, allowedSources: ["192.0.2.0/24", "2001:db8::/32"]),
        ],
        bindings: [
            .init(port: "eth1", vlan: 100, logicalSwitch: "web"),
            .init(port: "eth2", vlan: nil, logicalSwitch: "database"),
        ],
        problems: ["Physical_Port eth3: VLAN 100 is bound to two logical switches (web, app)"])
}
