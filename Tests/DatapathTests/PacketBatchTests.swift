import Datapath
import Packet
import Testing

@Suite("PacketBatch: preallocated slots")
struct PacketBatchTests {
    @Test(arguments: [
        UDPEndpoint(address: IPAddress("192.0.2.7")!, port: 4789),
        UDPEndpoint(address: IPAddress("2001:db8::42")!, port: 65535),
    ])
    func destinationReadsBackAsTheSameEndpoint(_ endpoint: UDPEndpoint) {
        let batch = PacketBatch(capacity: 2)
        batch.setDestination(endpoint, for: 1)
        #expect(batch.source(1) == endpoint)
        #expect(batch.source(0) == nil)
    }

    /// The point of the headroom: the outer headers go in front of the received frame,
    /// and the inner frame is never copied.
    @Test func encapsulationWritesOuterHeadersIntoTheHeadroom() throws {
        let batch = PacketBatch(capacity: 4, bufferSize: 2048, headroom: 128)
        let inner = (0..<60).map { UInt8($0) }
        inner.withUnsafeBytes { batch.copyFrame($0, into: 2) }
        #expect(batch.frameStart(2) == 128)
        #expect(Array(batch.frame(2)) == inner)

        let template = try OuterHeaderTemplate(
            encapsulation: .vxlan, vni: 5000,
            network: .ipv4(
                source: IPv4Address(192, 0, 2, 1), destination: IPv4Address(192, 0, 2, 2)),
            ethernet: .init(
                destination: MACAddress(2, 0, 0, 0, 0, 2), source: MACAddress(2, 0, 0, 0, 0, 1)))
        let start = batch.frameStart(2) - template.headerLength
        let end = try template.stamp(
            into: batch.buffer(2), at: start, innerLength: batch.frameLength(2),
            sourcePort: 50000)
        batch.setFrame(2, start: start, length: end - start)

        let frame = batch.frame(2)
        #expect(frame.count == template.headerLength + inner.count)
        #expect(Array(frame[0..<6]) == [2, 0, 0, 0, 0, 2])
        #expect(Array(frame[template.headerLength...]) == inner)
    }
}
