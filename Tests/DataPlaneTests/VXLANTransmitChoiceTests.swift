import Datapath
import Glibc
import Testing

@testable import DataPlane

/// What `vxlan-transmit` comes to at start (`VXLANTransmit.choose`), with the kernel's
/// refusals injected at each step: the TAP that will not open (an old kernel, a sandbox
/// without /dev/net/tun, anything else) and the redirect that is refused (no cls_u32 or
/// act_mirred), which this machine's kernel, with both built in, cannot show in a lab.
@Suite struct VXLANTransmitChoiceTests {
    struct Refused: Error, CustomStringConvertible {
        var description: String { "Operation not supported (RTM_NEWTFILTER)" }
    }

    static func choose(
        _ mode: VXLANTransmit, openErrno: Int32? = nil, redirectRefused: Bool = false
    ) -> (port: Int?, note: String?, warning: String?, opened: Bool, redirected: Bool) {
        var opened = false
        var redirected = false
        let result = VXLANTransmit.choose(
            mode, device: "vtepd-gso", underlay: "eth1",
            open: { () throws(SystemError) -> Int in
                opened = true
                if let openErrno { throw SystemError(call: "TUNSETIFF", errno: openErrno) }
                return 7
            },
            redirect: { _ in
                redirected = true
                if redirectRefused { throw Refused() }
            })
        return (result.port, result.note, result.warning, opened, redirected)
    }

    @Test func trainsOpensNothing() {
        let r = Self.choose(.trains)
        #expect(r.port == nil && r.note == nil && r.warning == nil && !r.opened)
    }

    @Test(arguments: [VXLANTransmit.auto, .tunnelGSO])
    func wholeWhenTheKernelTakesIt(mode: VXLANTransmit) {
        let r = Self.choose(mode)
        #expect(r.port == 7 && r.warning == nil && r.redirected)
        #expect(
            r.note
                == "vxlan-transmit \(mode.rawValue): TCP super-frames toward VXLAN are written whole to vtepd-gso (UDP-tunnel GSO), which sends them out of eth1 as they are (traffic control: ingress redirect)"
        )
    }

    @Test(arguments: [
        (EOPNOTSUPP, "this kernel has no UDP-tunnel GSO for TAP devices (Linux 6.17 or later)"),
        (
            ENOENT,
            "/dev/net/tun cannot be opened (missing, or hidden by the service's sandbox: PrivateDevices=yes without BindPaths=/dev/net/tun)"
        ),
        (
            EPERM,
            "TUNSETIFF is not permitted: Operation not permitted (the data plane needs CAP_NET_RAW and CAP_NET_ADMIN)"
        ),
    ])
    func autoTakesARefusalAsANotice(errno: Int32, reason: String) {
        let r = Self.choose(.auto, openErrno: errno)
        #expect(r.port == nil && r.warning == nil && !r.redirected)
        #expect(
            r.note
                == "vxlan-transmit auto: TCP super-frames toward VXLAN leave as UDP GSO trains, not whole: \(reason)"
        )
        let named = Self.choose(.tunnelGSO, openErrno: errno)
        #expect(named.port == nil && named.note == nil)
        #expect(
            named.warning
                == "vxlan-transmit tunnel-gso is off: \(reason); TCP super-frames leave as UDP GSO trains"
        )
    }

    @Test func aRefusedRedirectLeavesTrains() {
        let reason =
            "the redirect from vtepd-gso to eth1 was refused (Operation not supported (RTM_NEWTFILTER); the kernel needs the u32 classifier and the mirred action)"
        let r = Self.choose(.auto, redirectRefused: true)
        #expect(r.port == nil && r.warning == nil && r.opened && r.redirected)
        #expect(
            r.note
                == "vxlan-transmit auto: TCP super-frames toward VXLAN leave as UDP GSO trains, not whole: \(reason)"
        )
        let named = Self.choose(.tunnelGSO, redirectRefused: true)
        #expect(named.port == nil && named.note == nil)
        #expect(
            named.warning
                == "vxlan-transmit tunnel-gso is off: \(reason); TCP super-frames leave as UDP GSO trains"
        )
    }
}

/// `vxlan-trains auto`: the packet socket from Linux 6.2 on (UDP GSO from packet sockets),
/// UDP sockets before.
@Suite struct VXLANTrainsChoiceTests {
    @Test func autoFollowsTheKernelsVersion() {
        for (release, packet) in [
            ("6.1.0-28-amd64", false), ("5.15.0-122-generic", false), ("4.19.0", false),
            ("6.2.0", true), ("6.12.48+deb13-amd64", true), ("6.18.44-fc-v1272", true),
            ("10.0", true), ("unparsable", true),
        ] {
            #expect(VXLANTrains.takesPacketSocketTrains(release) == packet, "\(release)")
            #expect(
                VXLANTrains.choose(.auto, kernel: release) == (packet ? .packetSocket : .udpSocket),
                "\(release)")
        }
        #expect(VXLANTrains.choose(.auto, kernel: nil) == .packetSocket)
        #expect(VXLANTrains.choose(.udpSocket, kernel: "6.18.0") == .udpSocket)
        #expect(VXLANTrains.choose(.packetSocket, kernel: "6.1.0") == .packetSocket)
    }
}
