import Glibc

// udhcpc's script (udhcpc -s): udhcpc runs it with the event (deconfig, bound, renew,
// leasefail, nak) as its only argument and the lease in its environment. It hands both to
// vtepd over the socket named by VTEPD_DHCP_HOOK_SOCKET and waits until vtepd has applied
// them, then exits 0 (applied) or 1 (refused, vtepd's reason on stderr, which udhcpc passes
// to vtepd's log). It changes nothing itself and runs no shell.
//
// The message: KEY=VALUE pairs, each ended by a NUL byte (Appliance's DHCPHookMessage):
// `event`, then the variables udhcpc sets that vtepd reads.

let variables = [
    "interface", "ip", "mask", "router", "dns", "domain", "search", "lease", "serverid",
]

func fail(_ message: String) -> Never {
    let line = Array("vtep-dhcp-event: \(message)\n".utf8)
    _ = line.withUnsafeBytes { write(2, $0.baseAddress, $0.count) }
    exit(1)
}

let arguments = CommandLine.arguments
guard arguments.count == 2 else { fail("usage: vtep-dhcp-event EVENT (run by udhcpc -s)") }
guard let socketPath = getenv("VTEPD_DHCP_HOOK_SOCKET").map({ String(cString: $0) }) else {
    fail("VTEPD_DHCP_HOOK_SOCKET is not set: this program is run by vtepd's DHCP client")
}

var message: [UInt8] = Array("event=\(arguments[1])".utf8) + [0]
for name in variables {
    guard let value = getenv(name) else { continue }
    message += Array("\(name)=".utf8)
    var pointer = value
    while pointer.pointee != 0 {
        message.append(UInt8(bitPattern: pointer.pointee))
        pointer += 1
    }
    message.append(0)
}

var address = sockaddr_un()
address.sun_family = sa_family_t(AF_UNIX)
let pathBytes = Array(socketPath.utf8)
guard pathBytes.count < MemoryLayout.size(ofValue: address.sun_path) else {
    fail("socket path too long: \(socketPath)")
}
withUnsafeMutableBytes(of: &address.sun_path) { raw in
    raw.copyBytes(from: pathBytes)
    raw[pathBytes.count] = 0
}
let fd = socket(AF_UNIX, Int32(SOCK_SEQPACKET.rawValue), 0)
guard fd >= 0 else { fail("socket: \(String(cString: strerror(errno)))") }
let connected = withUnsafePointer(to: &address) {
    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
        connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
    }
}
guard connected == 0 else {
    fail("cannot reach vtepd at \(socketPath): \(String(cString: strerror(errno)))")
}
guard
    message.withUnsafeBytes({ send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) })
        == message.count
else { fail("send: \(String(cString: strerror(errno)))") }
// vtepd answers once the host has the lease (netlink, resolv.conf): wait for it.
var timeout = timeval(tv_sec: 60, tv_usec: 0)
setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
var reply = [UInt8](repeating: 0, count: 4096)
let count = recv(fd, &reply, reply.count, 0)
guard count > 0 else { fail("vtepd did not answer: \(String(cString: strerror(errno)))") }
let answer = String(decoding: reply[0..<count], as: UTF8.self)
guard answer == "ok" else { fail("vtepd: \(answer)") }
exit(0)
