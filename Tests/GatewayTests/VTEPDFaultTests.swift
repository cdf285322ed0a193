import Foundation
import TestSupport
import Testing

/// The faults vtepd writes into its Physical_Switch for a controller, caused on the wire and
/// read back as a controller (vtep-ctl) reads them.
@Suite("vtepd reports its faults in hardware_vtep", .serialized)
struct VTEPDFaultTests {
    @Test(
        "A MAC flood past a logical switch's mac-limit raises mac_table_exhaustion; ageing clears it"
    )
    func macFloodRaisesAndAgeingClearsTheFault() async throws {
        try await Lab.runOnOwnThread { lab in
            let topology = try lab.topology([.gateway, .kernel(vni: 5001)])
            let a = topology.sites[0]
            let vtepd = try lab.startVTEPD(at: a, vni: 5001)
            let ls = vtepd.logicalSwitch
            try vtepd.control([
                "set", "Logical_Switch", ls, "other_config:mac-limit=3",
                "other_config:mac-ageing=5",
            ])
            try waitUntil("vtepd ages \(ls) after 5 s and holds at most 3 MACs") {
                let switches = try vtepd.configuration()["switches"] as? [[String: Any]] ?? []
                let this = switches.first { $0["name"] as? String == ls }
                return this?["macAgeing"] as? Int == 5 && this?["macLimit"] as? Int == 3
            }
            func faults() throws -> String {
                try vtepd.control([
                    "get", "Physical_Switch", vtepd.physicalSwitch, "switch_fault_status",
                ]).output.trimmingCharacters(in: .whitespacesAndNewlines)
            }
            #expect(try faults() == "[]")

            // Six source MACs into a switch that holds three.
            for n in 1...6 {
                try lab.injectProbe(String(format: "02:00:00:00:fa:%02x", n), from: a)
            }
            try waitUntil("vtepd raises mac_table_exhaustion", lastSeen: try faults()) {
                try faults() == "[mac_table_exhaustion]"
            }
            #expect(try vtepd.switchCounters(ls)["learningRefused"] ?? 0 >= 3)
            #expect(vtepd.process.tail().contains("switch faults: mac_table_exhaustion"))

            // Silence: the MACs age out after 5 s, the switch is below its limit again.
            try waitUntil("ageing clears the fault", lastSeen: try faults()) {
                try faults() == "[]"
            }
            // The fault clears once the switch is below its limit, which the first entry to age
            // out brings about; the others, learned up to a second later, follow.
            try waitUntil("every flooded MAC aged out") {
                try vtepd.macTable().filter { $0.mac.hasPrefix("02:00:00:00:fa") }.isEmpty
            }
            try vtepd.process.requireRunning()
        }
    }

    @Test("management_ips follows the host's addresses, tunnel IPs and link-local ones left out")
    func managementIPsFollowTheHost() async throws {
        try await Lab.runOnOwnThread { lab in
            let topology = try lab.topology([.gateway, .kernel(vni: 5001)])
            let a = topology.sites[0]
            let vtepd = try lab.startVTEPD(at: a, vni: 5001)
            func managementIPs() throws -> String {
                try vtepd.control([
                    "get", "Physical_Switch", vtepd.physicalSwitch, "management_ips",
                ]).output.trimmingCharacters(in: .whitespacesAndNewlines)
            }
            try waitUntil("vtepd writes no management address (only tunnel IPs here)") {
                try managementIPs() == "[]"
            }
            let device = a.underlayInterface
            try lab.execute(
                ["ip", "addr", "add", "198.51.100.7/24", "dev", device], in: a.namespace)
            try waitUntil("the new address is a management address", lastSeen: try managementIPs())
            {
                try managementIPs() == "[\"198.51.100.7\"]"
            }
            try lab.execute(
                ["ip", "addr", "del", "198.51.100.7/24", "dev", device], in: a.namespace)
            try waitUntil("it is gone again", lastSeen: try managementIPs()) {
                try managementIPs() == "[]"
            }
            try vtepd.process.requireRunning()
        }
    }
}
