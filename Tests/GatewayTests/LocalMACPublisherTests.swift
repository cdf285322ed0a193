import ControlAPI
import Foundation
import HostConfiguration
import Packet
import Synchronization
import TestSupport
import Testing

@testable import DataPlane
@testable import Gateway
@testable import OVSDB
@testable import ProcessSpawning
@testable import SwitchControl

typealias RowID = OVSDB.UUID
func newID() -> RowID { OVSDB.UUID(Foundation.UUID().uuidString)! }

/// Ucast_Macs_Local / Mcast_Macs_Local publishing: the plan on hand-made rows, then the
/// publisher against a real ovsdb-server, read back with `vtep-ctl list-local-macs` as an
/// operator or a controller sees it.
@Suite(.serialized, .timeLimit(.minutes(1))) struct LocalMACPublisherTests {
    static let here = IPAddress("10.0.0.1")!
    static func mac(_ last: Int) -> MACAddress {
        MACAddress("02:00:00:00:00:\(String(format: "%02x", last))")!
    }

    // MARK: The plan

    /// ls0 and ls1; locators: ours (10.0.0.1) and another gateway's (10.9.9.9).
    struct Rows {
        var db = HardwareVTEP.Database()
        let ls0 = newID(), ls1 = newID(), ours = newID(), theirs = newID()
        init() {
            db.logicalSwitches[ls0] = .init(
                uuid: ls0, name: "ls0", description: "", tunnelKey: 5000, replicationMode: nil,
                otherConfig: [:])
            db.logicalSwitches[ls1] = .init(
                uuid: ls1, name: "ls1", description: "", tunnelKey: 5001, replicationMode: nil,
                otherConfig: [:])
            db.physicalLocators[ours] = .init(
                uuid: ours, dstIP: "10.0.0.1", encapsulationType: "vxlan_over_ipv4")
            db.physicalLocators[theirs] = .init(
                uuid: theirs, dstIP: "10.9.9.9", encapsulationType: "vxlan_over_ipv4")
        }
        @discardableResult
        mutating func ucast(_ mac: String, _ ls: RowID, _ locator: RowID) -> RowID {
            let uuid = newID()
            db.ucastMacsLocal[uuid] = .init(
                uuid: uuid, mac: mac, logicalSwitch: ls, locator: locator, ipaddr: "")
            return uuid
        }
        @discardableResult
        mutating func flood(_ ls: RowID, _ locators: [RowID]) -> RowID {
            let set = newID()
            let uuid = newID()
            db.physicalLocatorSets[set] = .init(uuid: set, locators: locators)
            db.mcastMacsLocal[uuid] = .init(
                uuid: uuid, mac: "unknown-dst", logicalSwitch: ls, locatorSet: set, ipaddr: "")
            return uuid
        }
    }

    func deleted(_ plan: LocalMACPlan, _ table: String) -> Set<RowID> {
        var uuids: Set<RowID> = []
        for case .delete(table, let conditions) in plan.operations {
            if case .atom(.uuid(let uuid)) = conditions.first?.value { uuids.insert(uuid) }
        }
        return uuids
    }

    func insertedMACs(_ plan: LocalMACPlan) -> [String] {
        plan.operations.compactMap {
            guard case .insert("Ucast_Macs_Local", let row, _) = $0,
                case .atom(.string(let mac))? = row["MAC"]
            else { return nil }
            return mac
        }
    }

    @Test func aFreshDatabaseGetsOurLocatorTheMACsAndAFloodRowPerBoundSwitch() {
        var rows = Rows()
        rows.db.physicalLocators[rows.ours] = nil
        let plan = LocalMACPlan(
            database: rows.db, learned: ["ls0": [Self.mac(2), Self.mac(1)], "ls1": []],
            tunnelIPs: [Self.here], limit: 100)
        #expect(plan.inserted == 2 && plan.deleted == 0 && plan.remaining == 0)
        #expect(
            plan.operations.first
                == .insert(
                    table: "Physical_Locator",
                    row: Row([
                        "dst_ip": .atom(.string("10.0.0.1")),
                        "encapsulation_type": .atom(.string("vxlan_over_ipv4")),
                    ]), uuidName: "local"))
        #expect(insertedMACs(plan) == ["02:00:00:00:00:01", "02:00:00:00:00:02"])
        let floods = plan.operations.filter {
            if case .insert("Mcast_Macs_Local", _, _) = $0 { return true } else { return false }
        }
        #expect(floods.count == 2)
    }

    @Test func whatIsAlreadyPublishedIsLeftAlone() {
        var rows = Rows()
        rows.ucast("02:00:00:00:00:01", rows.ls0, rows.ours)
        rows.ucast("02:00:00:00:00:02", rows.ls0, rows.ours)
        rows.flood(rows.ls0, [rows.ours])
        let plan = LocalMACPlan(
            database: rows.db, learned: ["ls0": [Self.mac(1), Self.mac(2)]],
            tunnelIPs: [Self.here], limit: 100)
        #expect(plan.operations == [])
    }

    @Test func goneMACsDuplicatesAndUnboundSwitchesAreWithdrawnButNotOtherGateways() {
        var rows = Rows()
        let first = rows.ucast("02:00:00:00:00:01", rows.ls0, rows.ours)
        let second = rows.ucast("02:00:00:00:00:01", rows.ls0, rows.ours)
        let aged = rows.ucast("02:00:00:00:00:03", rows.ls0, rows.ours)
        let unbound = rows.ucast("02:00:00:00:00:04", rows.ls1, rows.ours)
        let theirs = rows.ucast("02:00:00:00:00:05", rows.ls0, rows.theirs)
        rows.flood(rows.ls0, [rows.ours])
        let unboundFlood = rows.flood(rows.ls1, [rows.ours])
        rows.flood(rows.ls1, [rows.theirs])
        rows.flood(rows.ls1, [rows.ours, rows.theirs])  // not ours alone: not ours
        let plan = LocalMACPlan(
            database: rows.db, learned: ["ls0": [Self.mac(1)]], tunnelIPs: [Self.here],
            limit: 100)
        // Of two rows for one MAC, the one with the lower UUID stays.
        #expect(deleted(plan, "Ucast_Macs_Local") == [aged, unbound, max(first, second)])
        #expect(!deleted(plan, "Ucast_Macs_Local").contains(theirs))
        #expect(deleted(plan, "Mcast_Macs_Local") == [unboundFlood])
        #expect(insertedMACs(plan) == [])
        #expect(plan.deleted == 3 && plan.inserted == 0 && plan.remaining == 0)
    }

    @Test func aMACInTwoSwitchesIsTwoRowsAndASecondTunnelAddressIsOursToo() {
        var rows = Rows()
        let v6 = newID()
        rows.db.physicalLocators[v6] = .init(
            uuid: v6, dstIP: "2001:DB8::1", encapsulationType: "vxlan_over_ipv4")
        let old = rows.ucast("02:00:00:00:00:09", rows.ls1, v6)
        let plan = LocalMACPlan(
            database: rows.db, learned: ["ls0": [Self.mac(1)], "ls1": [Self.mac(1)]],
            tunnelIPs: [Self.here, IPAddress("2001:db8::1")!], limit: 100)
        #expect(deleted(plan, "Ucast_Macs_Local") == [old])
        #expect(insertedMACs(plan) == ["02:00:00:00:00:01", "02:00:00:00:00:01"])
        // The existing locator is named, not a new one.
        #expect(
            !plan.operations.contains {
                if case .insert("Physical_Locator", _, _) = $0 { return true } else { return false }
            })
    }

    @Test func aBatchHoldsAtMostTheLimitRemovalsFirst() {
        var rows = Rows()
        let stale = [1, 2, 3].map { rows.ucast("02:00:00:00:00:f\($0)", rows.ls0, rows.ours) }
        let learned: Set<MACAddress> = Set((1...4).map(Self.mac))
        let first = LocalMACPlan(
            database: rows.db, learned: ["ls0": learned], tunnelIPs: [Self.here], limit: 5)
        #expect(deleted(first, "Ucast_Macs_Local") == Set(stale))
        #expect(insertedMACs(first) == ["02:00:00:00:00:01", "02:00:00:00:00:02"])
        #expect(first.deleted == 3 && first.inserted == 2 && first.remaining == 2)
        let none = LocalMACPlan(
            database: rows.db, learned: ["ls0": learned], tunnelIPs: [Self.here], limit: 0)
        #expect(none.inserted == 0 && none.deleted == 0 && none.remaining == 7)
    }

    @Test func aSwitchNameSeveralSwitchesShareIsNotPublished() {
        var rows = Rows()
        rows.db.logicalSwitches[rows.ls1]?.name = "ls0"
        let third = newID()
        rows.db.logicalSwitches[third] = .init(
            uuid: third, name: "ls0", description: "", tunnelKey: 5002, replicationMode: nil,
            otherConfig: [:])
        let plan = LocalMACPlan(
            database: rows.db, learned: ["ls0": [Self.mac(1)]], tunnelIPs: [Self.here],
            limit: 100)
        #expect(plan.operations == [])
    }

    // MARK: Against ovsdb-server

    /// What the data plane learned, as the test sets it.
    final class Learned: Sendable {
        let macs = Mutex<[String: SortedMACs]>([:])
        let version = Atomic<Int>(0)
        func set(_ value: [String: SortedMACs]) { macs.withLock { $0 = value } }
    }

    /// A publisher on a connected client of `fixture`'s server. `running`: for `run()`, a
    /// fast reconnect, a round every 50 ms, and a database version that changes at every
    /// round, so every round reads.
    func publisher(
        _ fixture: ServerFixture, _ learned: Learned, limit: Int = 1000, running: Bool = false
    ) async throws -> LocalMACPublisher {
        let client = OVSDBClient(
            remote: fixture.server.remote, monitoring: HardwareVTEP.monitorRequests,
            backoff: running
                ? Backoff(initial: .milliseconds(50), maximum: .milliseconds(200)) : .standard)
        Task { for await _ in client.events {} }
        await client.start()
        try await waitUntil("the connection") { await client.isConnected }
        var settings = LocalMACPublisher.Settings()
        settings.batchLimit = limit
        if running { settings.interval = .milliseconds(50) }
        return LocalMACPublisher(
            client: client, tunnelIPs: [Self.here], settings: settings,
            learned: { learned.macs.withLock { $0 } },
            databaseVersion: {
                running
                    ? learned.version.add(1, ordering: .relaxed).newValue
                    : learned.version.load(ordering: .relaxed)
            })
    }

    /// `vtep-ctl list-local-macs`, as its lines without the blank ones.
    func localMACs(_ fixture: ServerFixture, _ ls: String) async throws -> [String] {
        try await fixture.vtepCtl("list-local-macs", ls).split(separator: "\n").map {
            $0.trimmingCharacters(in: .whitespaces)
        }
    }

    @Test func publishesWithdrawsAndLeavesAnotherGatewaysRowsAlone() async throws {
        try await withServer { fixture in
            try await fixture.vtepCtl("add-ls", "ls0")
            try await fixture.vtepCtl("add-ls", "ls1")
            try await fixture.vtepCtl("add-ucast-local", "ls0", "02:00:00:00:00:99", "10.9.9.9")
            try await fixture.vtepCtl("add-mcast-local", "ls0", "unknown-dst", "10.9.9.9")
            let learned = Learned()
            learned.set(["ls0": [Self.mac(1), Self.mac(2)], "ls1": [Self.mac(3)]])
            let publisher = try await publisher(fixture, learned)
            await publisher.round()
            #expect(await publisher.lastError == nil)
            #expect(
                try await localMACs(fixture, "ls0") == [
                    "ucast-mac-local",
                    "02:00:00:00:00:01 -> vxlan_over_ipv4/10.0.0.1",
                    "02:00:00:00:00:02 -> vxlan_over_ipv4/10.0.0.1",
                    "02:00:00:00:00:99 -> vxlan_over_ipv4/10.9.9.9",
                    "mcast-mac-local",
                    "unknown-dst -> vxlan_over_ipv4/10.0.0.1",
                    "unknown-dst -> vxlan_over_ipv4/10.9.9.9",
                ])
            #expect(
                try await localMACs(fixture, "ls1") == [
                    "ucast-mac-local",
                    "02:00:00:00:00:03 -> vxlan_over_ipv4/10.0.0.1",
                    "mcast-mac-local",
                    "unknown-dst -> vxlan_over_ipv4/10.0.0.1",
                ])
            #expect(await publisher.published == 3)
            #expect(await publisher.transactions == 1)

            // MAC 2 ages out, ls1 is unbound.
            learned.set(["ls0": [Self.mac(1)]])
            await publisher.round()
            #expect(
                try await localMACs(fixture, "ls0") == [
                    "ucast-mac-local",
                    "02:00:00:00:00:01 -> vxlan_over_ipv4/10.0.0.1",
                    "02:00:00:00:00:99 -> vxlan_over_ipv4/10.9.9.9",
                    "mcast-mac-local",
                    "unknown-dst -> vxlan_over_ipv4/10.0.0.1",
                    "unknown-dst -> vxlan_over_ipv4/10.9.9.9",
                ])
            #expect(try await localMACs(fixture, "ls1") == ["ucast-mac-local", "mcast-mac-local"])
            #expect(await publisher.withdrawn == 2)
            #expect(await publisher.transactions == 2)

            // Nothing changed: nothing is written.
            await publisher.round()
            #expect(await publisher.transactions == 2)
        }
    }

    @Test func clearedRowsComeBackOnceTheDatabaseChangeIsSeen() async throws {
        try await withServer { fixture in
            try await fixture.vtepCtl("add-ls", "ls0")
            let learned = Learned()
            learned.set(["ls0": [Self.mac(1)]])
            let publisher = try await publisher(fixture, learned)
            await publisher.round()
            try await fixture.vtepCtl("clear-local-macs", "ls0")
            #expect(try await localMACs(fixture, "ls0") == ["ucast-mac-local", "mcast-mac-local"])
            // Neither what was learned nor the database version changed: the round reads
            // nothing (vtepd's control plane bumps the version at every update it receives).
            await publisher.round()
            #expect(try await localMACs(fixture, "ls0") == ["ucast-mac-local", "mcast-mac-local"])
            learned.version.add(1, ordering: .relaxed)
            await publisher.round()
            #expect(
                try await localMACs(fixture, "ls0") == [
                    "ucast-mac-local",
                    "02:00:00:00:00:01 -> vxlan_over_ipv4/10.0.0.1",
                    "mcast-mac-local",
                    "unknown-dst -> vxlan_over_ipv4/10.0.0.1",
                ])
        }
    }

    @Test func manyMACsGoInBatchesAndARestartWithdrawsWhatWasPublished() async throws {
        try await withServer { fixture in
            try await fixture.vtepCtl("add-ls", "ls0")
            let learned = Learned()
            learned.set(["ls0": SortedMACs((1...5).map(Self.mac))])
            let publisher = try await publisher(fixture, learned, limit: 2)
            var counts: [Int] = []
            for _ in 0..<4 {
                await publisher.round()
                counts.append(try await localMACs(fixture, "ls0").count - 3)
            }
            #expect(counts == [2, 4, 5, 5])
            #expect(await publisher.transactions == 3)

            // A new vtepd has learned nothing yet: what the last one published goes.
            learned.set(["ls0": []])
            let restarted = try await self.publisher(fixture, learned)
            await restarted.round()
            #expect(
                try await localMACs(fixture, "ls0") == [
                    "ucast-mac-local", "mcast-mac-local", "unknown-dst -> vxlan_over_ipv4/10.0.0.1",
                ])
            #expect(await restarted.withdrawn == 5)
        }
    }

    /// The mirror is checked by counting our rows: a count that agrees writes nothing; one
    /// that does not, beyond `readLimit` rows, withdraws them all and publishes afresh.
    @Test func aCountThatAgreesWritesNothingAndOneThatDoesNotPublishesAfresh() async throws {
        try await withServer { fixture in
            try await fixture.vtepCtl("add-ls", "ls0")
            let learned = Learned()
            learned.set(["ls0": SortedMACs((1...5).map(Self.mac))])
            let client = OVSDBClient(
                remote: fixture.server.remote, monitoring: HardwareVTEP.followedRequests)
            Task { for await _ in client.events {} }
            await client.start()
            try await waitUntil("the connection") { await client.isConnected }
            var settings = LocalMACPublisher.Settings()
            settings.readLimit = 0
            let publisher = LocalMACPublisher(
                client: client, tunnelIPs: [Self.here], settings: settings,
                learned: { learned.macs.withLock { $0 } },
                databaseVersion: { learned.version.load(ordering: .relaxed) })
            await publisher.round()
            #expect(await publisher.published == 5)
            // The database changed elsewhere: our five rows are counted, and agree.
            learned.version.add(1, ordering: .relaxed)
            await publisher.round()
            learned.version.add(1, ordering: .relaxed)
            await publisher.round()
            #expect(await publisher.transactions == 1)
            #expect(await publisher.withdrawn == 0)

            try await fixture.vtepCtl("del-ucast-local", "ls0", "02:00:00:00:00:03")
            learned.version.add(1, ordering: .relaxed)
            await publisher.round()
            #expect(await publisher.lastError == nil)
            #expect(await publisher.withdrawn == 4, "the four left, in one delete")
            #expect(await publisher.published == 10)
            #expect(try await localMACs(fixture, "ls0").count == 5 + 3)
            await client.stop()
        }
    }

    /// A running publisher reports the database going away, and its return.
    @Test func aFailureIsReportedOnceAndSoIsTheRecovery() async throws {
        try await withServer { fixture in
            try await fixture.vtepCtl("add-ls", "ls0")
            let learned = Learned()
            learned.set(["ls0": [Self.mac(1)]])
            let publisher = try await publisher(fixture, learned, running: true)
            let reports = Mutex<[String?]>([])
            let running = Task {
                await publisher.run { problem in reports.withLock { $0.append(problem) } }
            }
            defer { running.cancel() }
            try await waitUntil("MAC 1 is published") {
                try await localMACs(fixture, "ls0").contains(
                    "02:00:00:00:00:01 -> vxlan_over_ipv4/10.0.0.1")
            }
            await fixture.server.stop()
            try await waitUntil("the failure is reported") {
                reports.withLock { $0.first.map { $0 != nil } ?? false }
            }
            try await fixture.server.start()
            do {
                try await waitUntil("the recovery is reported") {
                    reports.withLock { $0.count >= 2 && $0.last.map { $0 == nil } == true }
                }
            } catch {
                let said = reports.withLock { $0 }
                Issue.record(
                    "reported so far: \(said); last round: \(await publisher.lastError ?? "ok")")
                throw error
            }
            learned.set(["ls0": [Self.mac(2)]])
            try await waitUntil("MAC 2 replaces MAC 1") {
                try await localMACs(fixture, "ls0") == [
                    "ucast-mac-local", "02:00:00:00:00:02 -> vxlan_over_ipv4/10.0.0.1",
                    "mcast-mac-local", "unknown-dst -> vxlan_over_ipv4/10.0.0.1",
                ]
            }
            // Reported at the two transitions only, whatever reasons the failing rounds gave.
            let said = reports.withLock { $0 }
            #expect(said.count == 2 && said[0] != nil && said[1] == nil, "\(said)")
        }
    }

    @Test func anUnknownSwitchIsSkippedAndAnUnreachableDatabaseIsAFailureToRetry() async throws {
        try await withServer { fixture in
            let learned = Learned()
            learned.set(["gone": [Self.mac(1)]])
            let publisher = try await publisher(fixture, learned)
            await publisher.round()  // no such switch: nothing to write
            #expect(await publisher.lastError == nil)
            #expect(await publisher.transactions == 0)
            await fixture.server.stop()
            learned.set(["gone": [Self.mac(2)]])
            await publisher.round()
            #expect(await publisher.lastError != nil)
        }
    }
}
