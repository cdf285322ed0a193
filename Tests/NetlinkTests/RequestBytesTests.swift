import Packet
import Testing

@testable import Netlink

// Golden request bytes, checked by hand against linux/netlink.h, linux/rtnetlink.h and
// linux/neighbour.h (fields little-endian on this host, addresses in network order) and
// against iproute2 6.1 under `strace -e sendmsg -xx`: `ip route get 192.0.2.7` sends the
// same bytes but for the sequence number and rtm_flags RTM_F_LOOKUP_TABLE (0x1000, which
// only adds the table to the answer); `ip neigh get 10.0.0.2 dev X` sends exactly ours.
// `ip neigh add … use` sends NTF_USE like our solicitation, but with NLM_F_EXCL and state
// PERMANENT, which makes the entry exempt from garbage collection; ours stays collectable.

@Suite("Netlink: request bytes")
struct RequestBytesTests {
    @Test func routeLookupIPv4() {
        let bytes = Route.request(to: IPAddress("192.0.2.7")!, sequence: 1)
        #expect(
            bytes == [
                0x24, 0, 0, 0,  // nlmsg_len 36
                0x1A, 0,  // RTM_GETROUTE
                0x01, 0,  // NLM_F_REQUEST
                1, 0, 0, 0,  // sequence
                0, 0, 0, 0,  // port id: the kernel's
                2, 32, 0, 0, 0, 0, 0, 0,  // rtmsg: AF_INET, /32, nothing else
                0, 0, 0, 0,  // rtm_flags
                8, 0, 1, 0, 192, 0, 2, 7,  // RTA_DST
            ])
    }

    @Test func routeLookupIPv6() {
        let bytes = Route.request(to: IPAddress("2001:db8::1")!, sequence: 0x0102_0304)
        #expect(
            bytes == [
                0x30, 0, 0, 0, 0x1A, 0, 0x01, 0, 4, 3, 2, 1, 0, 0, 0, 0,
                10, 128, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,  // rtmsg: AF_INET6, /128
                20, 0, 1, 0,  // RTA_DST, 16 bytes
                0x20, 0x01, 0x0D, 0xB8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1,
            ])
    }

    @Test func neighbourLookup() {
        let bytes = Neighbour.lookupRequest(
            IPAddress("10.0.0.2")!, interfaceIndex: 7, sequence: 3)
        #expect(
            bytes == [
                0x24, 0, 0, 0,
                0x1E, 0,  // RTM_GETNEIGH
                0x01, 0,  // NLM_F_REQUEST: one entry, not a dump
                3, 0, 0, 0, 0, 0, 0, 0,
                2, 0, 0, 0,  // ndmsg: AF_INET, padding
                7, 0, 0, 0,  // ndm_ifindex
                0, 0, 0, 0,  // state, flags, type: must be zero in a get
                8, 0, 1, 0, 10, 0, 0, 2,  // NDA_DST
            ])
    }

    @Test func neighbourSolicitation() {
        let bytes = Neighbour.solicitRequest(
            IPAddress("fe80::1")!, interfaceIndex: 0x0102, sequence: 4)
        #expect(
            bytes == [
                0x30, 0, 0, 0,
                0x1C, 0,  // RTM_NEWNEIGH
                0x05, 0x04,  // NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE, no REPLACE/EXCL
                4, 0, 0, 0, 0, 0, 0, 0,
                10, 0, 0, 0,  // AF_INET6
                0x02, 0x01, 0, 0,  // ndm_ifindex 258
                0x01, 0,  // NUD_INCOMPLETE
                0x01,  // NTF_USE
                0,
                20, 0, 1, 0,  // NDA_DST
                0xFE, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1,
            ])
    }
}
