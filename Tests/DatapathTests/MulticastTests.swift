import Datapath
import Foundation
import NamespaceLab
import Packet
import TestSupport
import Testing

/// Receives on `socket` until a datagram with payload `last` arrives; returns the datagrams
/// before it. Sent after the others from the same socket over the same veth, `last` arrives
/// after any of them that arrives at all, so what came before it is all that came.
private func datagrams(on socket: UDPTunnelSocket, before last: [UInt8]) throws
    -> [(UDPEndpoint, [UInt8])]
{
    let batch = PacketBatch(capacity: 8)
    var found: [(UDPEndpoint, [UInt8])] = []
    try waitUntil("the datagram \(last)", lastSeen: "before it: \(found.map(\.1))") {
        let count = try socket.receive(into: batch)
        if count == 0 { waitReadable(socket.descriptor, milliseconds: 10) }
        for slot in 0..<count {
            if batch.frame(slot).elementsEqual(last) { return true }
            found.append((try #require(batch.source(slot)), Array(batch.frame(slot))))
        }
        return false
    }
    return found
}

/// A membership report seen on the wire: its group record types for `group`.
/// IGMPv3 (RFC 3376 §4.2) and MLDv2 (RFC 3810 §5.2) both carry records of type, aux
/// length, source count, group; 4 is CHANGE_TO_EXCLUDE_MODE (a join with no source
/// filter), 3 CHANGE_TO_INCLUDE_MODE (a leave).
private func reportRecords(in frame: UnsafeRawBufferPointer, for group: IPAddress) -> [UInt8] {
    guard frame.count > 14 else { return [] }
    let etherType = UInt16(frame[12]) << 8 | UInt16(frame[13])
    var offset: Int
    let groupBytes: [UInt8]
    switch group {
    case .v4(let address):
        // IPv4 with protocol 2 (IGMP), IGMPv3 report type 0x22.
        guard etherType == 0x0800, frame.count >= 34, frame[23] == 2 else { return [] }
        offset = 14 + Int(frame[14] & 0x0F) * 4
        guard frame.count >= offset + 8, frame[offset] == 0x22 else { return [] }
        groupBytes = withUnsafeBytes(of: address.rawValue.bigEndian) { Array($0) }
    case .v6(let address):
        // IPv6, Hop-by-Hop (router alert, RFC 3810 §5), then ICMPv6 type 143.
        guard etherType == 0x86DD, frame.count >= 62, frame[20] == 0 else { return [] }
        offset = 54 + (Int(frame[55]) + 1) * 8
        guard frame[54] == 58, frame.count >= offset + 8, frame[offset] == 143 else { return [] }
        var bytes = [UInt8](repeating: 0, count: 16)
        bytes.withUnsafeMutableBytes { address.store(into: $0, at: 0) }
        groupBytes = bytes
    }
    let count = Int(frame[offset + 6]) << 8 | Int(frame[offset + 7])
    var records: [UInt8] = []
    var record = offset + 8
    for _ in 0..<count {
        guard frame.count >= record + 4 + groupBytes.count else { break }
        let sources = Int(frame[record + 2]) << 8 | Int(frame[record + 3])
        if Array(frame[(record + 4)..<(record + 4 + groupBytes.count)]) == groupBytes {
            records.append(frame[record])
        }
        record += 4 + groupBytes.count * (1 + sources) + Int(frame[record + 1]) * 4
    }
    return records
}

/// Record types for `group` in the reports `capture` sees within `milliseconds`.
private func reports(for group: IPAddress, on capture: AccessPort, milliseconds: Int) throws
    -> [UInt8]
{
    let batch = PacketBatch(capacity: 16)
    var records: [UInt8] = []
    let deadline = Date().addingTimeInterval(Double(milliseconds) / 1000)
    while Date() < deadline {
        let count = try capture.receive(into: batch)
        if count == 0 { waitReadable(capture.descriptor, milliseconds: 10) }
        for slot in 0..<count { records += reportRecords(in: batch.frame(slot), for: group) }
    }
    return records
}

@Suite("UDPTunnelSocket: multicast groups on the underlay")
struct MulticastTests {
    /// A wildcard-bound socket that joined a group on the underlay interface receives what
    /// the far side sends to the group, announces the join and the leave in IGMPv3/MLDv2
    /// reports on the wire, and after leaving receives nothing more.
    @Test(arguments: [
        ("10.204.0.1/24", "10.204.0.2/24", "10.204.0.2", "0.0.0.0", "239.1.1.1", "224.0.0.0/4"),
        ("fd00:204::1/64", "fd00:204::2/64", "fd00:204::2", "::", "ff0e::db8:4789", "ff0e::/16"),
    ])
    func joinedGroupIsReceivedAndReportedAndLeftGroupIsNot(
        _ receiverAddress: String, _ senderAddress: String, _ sender: String, _ wildcard: String,
        _ groupText: String, _ groupRoute: String
    ) async throws {
        let group = try #require(IPAddress(groupText))
        let senderIP = try #require(IPAddress(sender))
        let isIPv6 = groupText.contains(":")
        try await NamespaceLab.runOnOwnThread(tag: "vgdp") { lab in
            let receiving = try lab.namespace("r", ipv6: isIPv6)
            let sending = try lab.namespace("s", ipv6: isIPv6)
            if isIPv6 {
                // MLD reports wait for the link-local address's duplicate address detection;
                // without DAD they go out at once.
                for namespace in [receiving, sending] {
                    try lab.ip(
                        "netns", "exec", namespace, "sysctl", "-qw",
                        "net.ipv6.conf.default.accept_dad=0")
                }
            }
            let (receiverLink, senderLink) = try lab.veth("r", in: receiving, "s", in: sending)
            try lab.ip(
                "-n", receiving, "addr", "add", receiverAddress, "dev", receiverLink, "nodad")
            try lab.ip("-n", sending, "addr", "add", senderAddress, "dev", senderLink, "nodad")
            try lab.ip(
                "-n", sending, "route", "add", groupRoute, "dev", senderLink, "table", "main")
            let capture = try lab.inNamespace(sending) {
                Handed(value: try AccessPort(interface: senderLink))
            }.value
            let senderSocket = try lab.inNamespace(sending) {
                Handed(value: try UDPTunnelSocket(address: senderIP, port: 0))
            }.value
            let (receiver, index) = try lab.inNamespace(receiving) {
                Handed(
                    value: (
                        try UDPTunnelSocket(address: IPAddress(wildcard)!),
                        Int32(bitPattern: if_nametoindex(receiverLink))
                    ))
            }.value
            #expect(
                receiver.localEndpoint == UDPEndpoint(address: IPAddress(wildcard)!, port: 4789))

            func send(_ payload: [UInt8], to address: IPAddress? = nil) throws {
                let batch = PacketBatch(capacity: 1)
                payload.withUnsafeBytes { batch.copyFrame($0, into: 0) }
                batch.setDestination(UDPEndpoint(address: address ?? group, port: 4789), for: 0)
                #expect(try senderSocket.send(batch, count: 1) == SendResult(processed: 1))
            }
            // A datagram to the receiver's own address, after one to the group: once it is
            // in, the group's would be too, had the receiver taken it.
            let unicast = try #require(IPAddress(String(receiverAddress.prefix { $0 != "/" })))
            let probe: [UInt8] = [0xFE, 0xED]
            func sendProbe() throws { try send(probe, to: unicast) }

            // Before joining, the group's datagrams are not ours.
            try send([0])
            try sendProbe()
            #expect(try datagrams(on: receiver, before: probe).isEmpty)

            try receiver.join(group: group, interfaceIndex: index)
            let joinReports = try reports(for: group, on: capture, milliseconds: 300)
            try send([1, 2, 3])
            try sendProbe()
            let received = try datagrams(on: receiver, before: probe)
            #expect(received.map(\.1) == [[1, 2, 3]])
            #expect(received.first?.0 == senderSocket.localEndpoint)

            try receiver.leave(group: group, interfaceIndex: index)
            let leaveReports = try reports(for: group, on: capture, milliseconds: 300)
            try send([4])
            try sendProbe()
            #expect(try datagrams(on: receiver, before: probe).isEmpty)

            // Another socket on the host joins the group: Linux would hand the group's
            // datagrams to every socket on the port (IP_MULTICAST_ALL); ours must not take
            // them, having left.
            let bystander = try lab.inNamespace(receiving) {
                Handed(value: try UDPTunnelSocket(address: IPAddress(wildcard)!, port: 0))
            }.value
            try bystander.join(group: group, interfaceIndex: index)
            try send([5])
            try sendProbe()
            #expect(try datagrams(on: receiver, before: probe).isEmpty)

            #expect(joinReports.first == 4, "join reports: \(joinReports)")
            // The join's report is sent again (robustness variable, RFC 3376 §8.1, RFC 3810
            // §9.1) and a repeat can come just after the leave: the leave's must be there.
            #expect(leaveReports.contains(3), "leave reports: \(leaveReports)")
            print("\(group): join records \(joinReports), leave records \(leaveReports)")
        }
    }

    @Test func groupOfTheOtherFamilyAndUnknownInterfaceAreRefused() async throws {
        try await NamespaceLab.runOnOwnThread(tag: "vgdp") { lab in
            let namespace = try lab.namespace("x")
            let errors = try lab.inNamespace(namespace) { () -> [SystemError?] in
                let socket = try UDPTunnelSocket(address: IPAddress("0.0.0.0")!)
                var errors: [SystemError?] = []
                for (group, index) in [("ff0e::1", Int32(1)), ("239.1.1.1", 9999), ("10.0.0.1", 1)]
                {
                    do {
                        try socket.join(group: IPAddress(group)!, interfaceIndex: index)
                        errors.append(nil)
                    } catch let error as SystemError {
                        errors.append(error)
                    }
                }
                return errors
            }
            #expect(errors[0]?.errno == EAFNOSUPPORT)
            #expect(
                errors[0]?.description
                    == "join for group ff0e::1 on a socket bound to 0.0.0.0:4789, another"
                    + " address family failed: Address family not supported by protocol (errno 97)")
            #expect(errors[1]?.errno == ENODEV)
            #expect(
                errors[1]?.description
                    == "IP_ADD_MEMBERSHIP for group 239.1.1.1 on interface index 9999 failed:"
                    + " No such device (errno 19)")
            #expect(
                errors[2]?.description
                    == "join for 10.0.0.1, which is not a multicast group address failed:"
                    + " Invalid argument (errno 22)")
        }
    }
}
