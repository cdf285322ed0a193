import Forwarding
import Foundation
import NIOCore
import Netlink
import OVSDB
import Packet
import SwitchControl

extension FuzzChecks {
    // MARK: Netlink replies

    /// A datagram as the kernel sends it back over rtnetlink, given as the answer to each
    /// request the gateway makes of it: a route lookup for an IPv4 and an IPv6 destination, a
    /// neighbour lookup, a neighbour solicitation. Each reader returns what it read or throws
    /// a `NetlinkError` that can describe itself, and never traps; what it read is about the
    /// address it asked for.
    public static func netlink(_ bytes: [UInt8]) {
        let kernel = KernelReply(bytes)
        for destination in [IPAddress("198.51.100.7")!, IPAddress("2001:db8::7")!] {
            do {
                let route = try Route.lookup(to: destination, using: kernel)
                precondition(route.destination == destination, "a route to \(route)")
                _ = route.description
            } catch {
                _ = error.description
            }
            do {
                if let entry = try Neighbour.entry(destination, interfaceIndex: 2, using: kernel) {
                    precondition(entry.address == destination, "a neighbour entry \(entry)")
                    _ = entry.description
                }
            } catch {
                _ = error.description
            }
            do {
                try Neighbour.solicit(destination, interfaceIndex: 2, using: kernel)
            } catch {
                _ = error.description
            }
        }
    }

    /// The kernel of `netlink`: every request gets the same datagram, and every request is
    /// numbered `KernelReply.sequence`, so a reply that carries it answers any of them.
    final class KernelReply: NetlinkTransport {
        static let sequence: UInt32 = 1
        let portID: UInt32 = 0x1234
        let reply: [UInt8]

        init(_ reply: [UInt8]) { self.reply = reply }

        func nextSequence() -> UInt32 { Self.sequence }

        func exchange(_ request: [UInt8]) throws(NetlinkError) -> [UInt8] { reply }
    }

    // MARK: OVSDB rows

    /// The vtep schema's column types, which `update3` diffs are applied with (the file
    /// `DatabaseServer` serves; Open vSwitch's openvswitch-vtep package installs it).
    static let vtepColumnTypes: ColumnTypes = {
        let path = DatabaseServer.defaultSchema
        guard let text = FileManager.default.contents(atPath: path),
            let schema = try? JSON(parsing: Array(text)),
            let types = try? ColumnTypes(schema: schema)
        else {
            fatalError("ovsdb-rows needs the hardware_vtep schema at \(path) (openvswitch-vtep)")
        }
        return types
    }()

    static let monitoredColumns = [String: [String]?](
        uniqueKeysWithValues: HardwareVTEP.monitorRequests.map { ($0.table, $0.columns) })

    /// What ovsdb-server sends a hardware_vtep client, as bytes off the connection: split
    /// into JSON texts as the connection splits them, each read as a JSON-RPC message, and
    /// the rows applied to one replica as the client applies them (RFC 7047 `<table-updates>`
    /// of the `monitor` reply and of `update`; `<table-updates2>` of the `monitor_cond_since`
    /// reply and of `update3`, with the vtep schema's column types). After each message the
    /// replica is read as the hardware_vtep model and as the gateway's snapshot of
    /// Physical_Switch ps0: the replica holds what the update said; every row of a table the
    /// model reads is read or reported as a problem, never lost in silence; and the snapshot
    /// compiles into a forwarding configuration (keeping the previous one's indices), since
    /// it leaves out every row the forwarding core would refuse.
    public static func ovsdbRows(_ bytes: [UInt8]) {
        var decoder = JSONTextDecoder(maximumMessageSize: 1 << 20)
        var buffer = ByteBuffer(bytes: bytes)
        var replica = Replica()
        var previous: ForwardingConfiguration?
        // A stream that is not JSON texts ends the connection, as it does the client's.
        while let text = try? decoder.nextText(in: &buffer) {
            guard let json = try? JSON(parsing: text.readableBytesView),
                let message = try? JSONRPCMessage(json: json)
            else { continue }
            let updates: TableUpdates
            switch message {
            case .response(_, .array(let parts), _) where parts.count == 3:
                updates =
                    replica.apply2(
                        parts[2], types: vtepColumnTypes, columns: monitoredColumns
                    ).updates
            case .response(_, let result, _):
                updates = TableUpdates.decode(result).updates
                replica.apply(updates)
            case .notification("update", let params) where params.count == 2:
                updates = TableUpdates.decode(params[1]).updates
                replica.apply(updates)
            case .notification("update3", let params) where params.count == 3:
                updates =
                    replica.apply2(
                        params[2], types: vtepColumnTypes, columns: monitoredColumns
                    ).updates
            default:
                continue
            }
            for (table, rows) in updates.tables {
                for (uuid, change) in rows {
                    precondition(
                        replica[table][uuid] == change.new, "\(table) row \(uuid) not as updated")
                }
            }
            previous = check(replica, previous: previous)
        }
    }

    /// The hardware_vtep model and the snapshot of ps0 read out of `replica`; returns the
    /// configuration compiled from the snapshot.
    private static func check(_ replica: Replica, previous: ForwardingConfiguration?)
        -> ForwardingConfiguration?
    {
        let database = HardwareVTEP.Database(replica)
        let read: [String: Int] = [
            "Physical_Switch": database.physicalSwitches.count,
            "Physical_Port": database.physicalPorts.count,
            "Logical_Switch": database.logicalSwitches.count,
            "Physical_Locator": database.physicalLocators.count,
            "Physical_Locator_Set": database.physicalLocatorSets.count,
            "Ucast_Macs_Remote": database.ucastMacsRemote.count,
            "Mcast_Macs_Remote": database.mcastMacsRemote.count,
            "Ucast_Macs_Local": database.ucastMacsLocal.count,
            "Mcast_Macs_Local": database.mcastMacsLocal.count,
            "Tunnel": database.tunnels.count,
            "Logical_Router": database.logicalRouters.count,
        ]
        precondition(Set(read.keys) == Set(monitoredColumns.keys), "a table left unchecked")
        for (table, count) in read {
            let refused = Set(database.problems.filter { $0.table == table }.map(\.uuid))
            precondition(
                count + refused.count == replica[table].count,
                "\(table): \(replica[table].count) rows, \(count) read, \(refused.count) refused")
        }
        let snapshot = GatewaySnapshot(
            database: database, physicalSwitch: "ps0", localTunnelIPs: [IPAddress("10.0.0.1")!])
        do throws(ConfigurationError) {
            return try snapshot.configuration(previous: previous)
        } catch {
            switch error {
            case .tooManySwitches, .tooManyPorts, .tooManyLocators: return nil
            default: preconditionFailure("the snapshot of \(replica) does not compile: \(error)")
            }
        }
    }
}
