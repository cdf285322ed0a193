import Foundation
import NamespaceLab
import Netlink
import Packet
import Testing

@testable import Appliance
@testable import ControlAPI
@testable import HostConfiguration
@testable import ProcessSpawning

/// One namespace with a veth (`link`) whose peer sits in a second namespace, and an appliance
/// root under /tmp with an /etc/hosts that has lines of its own.
private struct HostFixture {
    let namespace: String
    let link: String
    let root: String

    init(_ lab: NamespaceLab, root: String) throws {
        namespace = try lab.namespace("h")
        let peer = try lab.namespace("p")
        (link, _) = try lab.veth("a", in: namespace, "b", in: peer, up: false)
        self.root = root
        try AtomicFile.makeDirectories(root + "/etc")
        try AtomicFile.write(
            Array("127.0.0.1\tlocalhost\n127.0.1.1\tdebian\n# keep me\n".utf8),
            to: root + "/etc/hosts")
    }

    /// The kernel's view, as iproute2 prints it: link line, addresses, routes.
    func kernelState(_ lab: NamespaceLab) throws -> String {
        try lab.ip("-n", namespace, "-o", "link", "show", "dev", link)
            + (try lab.ip("-n", namespace, "-o", "addr", "show", "dev", link))
            + (try lab.ip("-n", namespace, "route", "show"))
            + (try lab.ip("-n", namespace, "-6", "route", "show"))
    }

    func file(_ relative: String) throws -> String? {
        try AtomicFile.read(root + "/" + relative).map { String(decoding: $0, as: UTF8.self) }
    }

    /// Every file under the root with its content, to show nothing changed.
    func files() throws -> [String: String] {
        var contents: [String: String] = [:]
        let enumerator = FileManager.default.enumerator(atPath: root)
        while let relative = enumerator?.nextObject() as? String {
            var isDirectory: ObjCBool = false
            _ = FileManager.default.fileExists(
                atPath: root + "/" + relative, isDirectory: &isDirectory)
            contents[relative] = isDirectory.boolValue ? "<dir>" : try file(relative)
        }
        return contents
    }

    func settings(
        address: String = "192.0.2.10/24", mtu: Int = 1400, routes: [(String?, String)] = [],
        hostname: String = "gw-test.example.net"
    ) throws -> ApplianceSettings {
        var settings = ApplianceSettings(hostname: try Hostname(hostname))
        try settings.updateInterface(InterfaceName(link)) {
            (interface) throws(ApplianceSettingsError) in
            interface.addressing = .staticIPv4(try IPv4InterfaceAddress(address))
            try interface.setMTU(mtu)
            interface.isUp = true
        }
        for (destination, gateway) in routes {
            try settings.addRoute(StaticRoute(destination: destination, gateway: gateway))
        }
        try settings.addDNSServer(IPAddress("192.0.2.53")!)
        try settings.addDNSServer(IPAddress("2001:db8::53")!)
        try settings.addSearchDomain(DomainName("example.net"))
        try settings.addNTPServer(NTPServer("ntp.example.net"))
        try settings.addNTPServer(NTPServer("192.0.2.123"))
        return settings
    }
}

private func machineHostname() -> String {
    var buffer = [CChar](repeating: 0, count: 256)
    gethostname(&buffer, buffer.count)
    return String(cString: buffer)
}

/// The HostConfigurationError `body` throws, or nil.
private func hostError(_ body: () throws -> Void) -> HostConfigurationError? {
    do {
        try body()
        return nil
    } catch let error as HostConfigurationError {
        return error
    } catch {
        Issue.record("unexpected \(error)")
        return nil
    }
}

@Suite("Appliance settings applied to a host in a private network and UTS namespace")
struct ApplianceHostTests {
    @Test func applyConfiguresKernelAndFilesAndIsIdempotent() async throws {
        let machine = machineHostname()
        try await NamespaceLab.runOnOwnThread(tag: "vgah", privateHostnames: true) { lab in
            try withTemporaryDirectory { root in
                let fixture = try HostFixture(lab, root: root)
                let host = ApplianceHost(root: root)
                let first = try fixture.settings(routes: [
                    ("198.51.100.0/24", "192.0.2.1"), (nil, "192.0.2.254"),
                ])
                let kernelHostname = try lab.inNamespace(fixture.namespace) { () throws -> String in
                    try host.apply(first, replacing: nil)
                    return host.kernelHostname.get()
                }
                // The real sethostname(2) ran, in the test thread's own UTS namespace only.
                #expect(kernelHostname == "gw-test.example.net")
                #expect(machineHostname() == machine)

                let state = try fixture.kernelState(lab)
                #expect(state.contains("mtu 1400"), "\(state)")
                #expect(state.contains(",UP"), "\(state)")
                #expect(state.contains("inet 192.0.2.10/24"), "\(state)")
                #expect(
                    state.contains(
                        "198.51.100.0/24 via 192.0.2.1 dev \(fixture.link) proto static"),
                    "\(state)")
                #expect(
                    state.contains("default via 192.0.2.254 dev \(fixture.link) proto static"),
                    "\(state)")
                #expect(try fixture.file("etc/hostname") == "gw-test.example.net\n")
                #expect(
                    try fixture.file("etc/hosts")
                        == "127.0.0.1\tlocalhost\n127.0.1.1\tgw-test.example.net gw-test\n# keep me\n"
                )
                #expect(
                    try fixture.file("etc/resolv.conf")
                        == "# Written by vtepd from the appliance settings; change it with vtepsh.\n"
                        + "nameserver 192.0.2.53\nnameserver 2001:db8::53\nsearch example.net\n")
                #expect(
                    try fixture.file("etc/chrony/sources.d/vtep-gateway.sources")
                        == "# Written by vtepd from the appliance settings; change it with vtepsh.\n"
                        + "server ntp.example.net iburst\nserver 192.0.2.123 iburst\n")

                // Applying the same settings again (as at every start) changes nothing and
                // is not refused.
                let files = try fixture.files()
                try lab.inNamespace(fixture.namespace) { try host.apply(first, replacing: first) }
                try lab.inNamespace(fixture.namespace) { try host.apply(first, replacing: nil) }
                #expect(try fixture.kernelState(lab) == state)
                #expect(try fixture.files() == files)

                // A change: new address, one route fewer, no DNS, another hostname.
                var second = try fixture.settings(
                    address: "192.0.2.20/24", mtu: 1500, routes: [(nil, "192.0.2.254")],
                    hostname: "gw2")
                second.clearDNSServers()
                second.clearSearchDomains()
                let (secondHostname, links, routes) = try lab.inNamespace(fixture.namespace) {
                    [second] in
                    try host.apply(second, replacing: first)
                    return (host.kernelHostname.get(), try host.interfaces(), try host.routes())
                }
                #expect(secondHostname == "gw2")
                let after = try fixture.kernelState(lab)
                #expect(
                    after.contains("inet 192.0.2.20/24") && !after.contains("192.0.2.10"),
                    "\(after)")
                #expect(after.contains("mtu 1500"), "\(after)")
                #expect(!after.contains("198.51.100.0/24"), "\(after)")
                #expect(after.contains("default via 192.0.2.254"), "\(after)")
                #expect(try fixture.file("etc/hosts")?.contains("127.0.1.1\tgw2\n") == true)
                #expect(
                    try fixture.file("etc/resolv.conf")
                        == "# Written by vtepd from the appliance settings; change it with vtepsh.\n"
                )
                // Read back for `show network interfaces` / `show network routes`.
                let shown = try #require(links.first { $0.name == fixture.link })
                #expect(shown.mtu == 1500)
                #expect(shown.isAdministrativelyUp)
                #expect(
                    shown.addresses.map { "\($0.address)/\($0.prefixLength)" }.contains(
                        "192.0.2.20/24"))
                #expect(
                    routes.contains {
                        $0.destination.length == 0 && $0.gateway == IPAddress("192.0.2.254")
                    })
            }
        }
    }

    /// The kernel refuses the last step (a gateway that is not on-link): the address, MTU and
    /// route changes made before it are undone, and no file or hostname changes.
    @Test func refusedRouteRollsEverythingBack() async throws {
        try await NamespaceLab.runOnOwnThread(tag: "vgah", privateHostnames: true) { lab in
            try withTemporaryDirectory { root in
                let fixture = try HostFixture(lab, root: root)
                let host = ApplianceHost(root: root)
                let old = try fixture.settings(routes: [("198.51.100.0/24", "192.0.2.1")])
                try lab.inNamespace(fixture.namespace) { try host.apply(old, replacing: nil) }
                let stateBefore = try fixture.kernelState(lab)
                let filesBefore = try fixture.files()

                var new = try fixture.settings(
                    address: "192.0.2.30/24", mtu: 9000,
                    routes: [(nil, "192.0.2.254"), ("203.0.113.0/24", "198.18.0.1")],
                    hostname: "other")
                try new.addNTPServer(NTPServer("192.0.2.124"))
                // Each inNamespace thread starts in a UTS namespace copied from this machine's.
                let (error, hostnameAfter) = try lab.inNamespace(fixture.namespace) { [new] in
                    let error = hostError { try host.apply(new, replacing: old) }
                    return (error, host.kernelHostname.get())
                }
                let refusal = try #require(error)
                #expect(refusal.step == "add route 203.0.113.0/24 via 198.18.0.1")
                guard case .netlink(.refused(_, let errno, _)) = refusal.cause else {
                    Issue.record("\(refusal)")
                    return
                }
                #expect(errno == ENETUNREACH)
                #expect(refusal.rollbackFailures.isEmpty)
                #expect(refusal.description.hasSuffix("nothing was changed"), "\(refusal)")
                print("refused as expected: \(refusal)")
                #expect(try fixture.kernelState(lab) == stateBefore)
                #expect(try fixture.files() == filesBefore)
                #expect(hostnameAfter == machineHostname())
            }
        }
    }

    /// A file that cannot be written (the drop-in's directory cannot be made: etc/systemd is
    /// a regular file) fails after the netlink steps and the other files succeeded; they are
    /// undone too, including the routes the kernel dropped with the old address.
    @Test func failedFileWriteRollsBackNetlinkChanges() async throws {
        try await NamespaceLab.runOnOwnThread(tag: "vgah", privateHostnames: true) { lab in
            try withTemporaryDirectory { root in
                let fixture = try HostFixture(lab, root: root)
                let host = ApplianceHost(root: root)
                let old = try fixture.settings(routes: [("198.51.100.0/24", "192.0.2.1")])
                try lab.inNamespace(fixture.namespace) { try host.apply(old, replacing: nil) }
                let stateBefore = try fixture.kernelState(lab)
                try AtomicFile.remove(root + "/etc/chrony/sources.d/vtep-gateway.sources")
                try FileManager.default.removeItem(atPath: root + "/etc/chrony")
                try AtomicFile.write(Array("not a directory\n".utf8), to: root + "/etc/chrony")
                let filesBefore = try fixture.files()

                var new = try fixture.settings(
                    address: "10.77.0.10/16", mtu: 1300, routes: [("198.51.100.0/24", "10.77.0.1")],
                    hostname: "gw3")
                try new.addSearchDomain(DomainName("corp.example"))
                let error = try lab.inNamespace(fixture.namespace) { [new] in
                    hostError { try host.apply(new, replacing: old) }
                }
                let refusal = try #require(error)
                #expect(
                    refusal.step == "write \(root)/etc/chrony/sources.d/vtep-gateway.sources")
                guard case .file(let fileError) = refusal.cause else {
                    Issue.record("\(refusal)")
                    return
                }
                #expect(fileError.call == "mkdir")
                #expect(fileError.errno == ENOTDIR)
                #expect(refusal.rollbackFailures.isEmpty, "\(refusal.rollbackFailures)")
                #expect(try fixture.kernelState(lab) == stateBefore)
                #expect(try fixture.files() == filesBefore)
            }
        }
    }

    /// Settings for an interface the host does not have are refused before anything changes.
    @Test func missingInterfaceIsRefused() async throws {
        try await NamespaceLab.runOnOwnThread(tag: "vgah", privateHostnames: true) { lab in
            try withTemporaryDirectory { root in
                let fixture = try HostFixture(lab, root: root)
                let host = ApplianceHost(root: root)
                var settings = try fixture.settings()
                try settings.updateInterface(InterfaceName("nosuch0")) { $0.isUp = true }
                let stateBefore = try fixture.kernelState(lab)
                let error = try lab.inNamespace(fixture.namespace) { [settings] in
                    hostError { try host.apply(settings, replacing: nil) }
                }
                #expect(error?.cause == .noSuchInterface(try InterfaceName("nosuch0")))
                #expect(error?.description.contains("this host has no interface nosuch0") == true)
                #expect(try fixture.kernelState(lab) == stateBefore)
                #expect(try fixture.file("etc/resolv.conf") == nil)
            }
        }
    }

    /// When saving fails after the host was changed, the host is changed back: applied and
    /// saved settings never disagree.
    @Test func failedSaveUndoesTheHostChange() async throws {
        try await NamespaceLab.runOnOwnThread(tag: "vgah", privateHostnames: true) { lab in
            try withTemporaryDirectory { root in
                let fixture = try HostFixture(lab, root: root)
                let host = ApplianceHost(root: root)
                let good = ApplianceSettingsStore(stateDirectory: root + "/state")
                let old = try fixture.settings()
                try lab.inNamespace(fixture.namespace) {
                    try host.applyAndSave(old, replacing: nil, to: good)
                }
                #expect(try good.load() == old)
                // A state "directory" that is a regular file: the save cannot succeed.
                try AtomicFile.write([], to: root + "/state-file")
                let stateBefore = try fixture.kernelState(lab)
                let filesBefore = try fixture.files()
                let broken = ApplianceSettingsStore(stateDirectory: root + "/state-file")
                let new = try fixture.settings(
                    address: "192.0.2.99/24", mtu: 9000, routes: [(nil, "192.0.2.1")],
                    hostname: "gw9")
                let (error, hostnameAfter) = try lab.inNamespace(fixture.namespace) {
                    let error = hostError { try host.applyAndSave(new, replacing: old, to: broken) }
                    return (error, host.kernelHostname.get())
                }
                guard case .save? = error?.cause else {
                    Issue.record("\(String(describing: error))")
                    return
                }
                #expect(error?.rollbackFailures == [])
                #expect(try fixture.kernelState(lab) == stateBefore)
                #expect(try fixture.files() == filesBefore)
                // The thread's UTS namespace started with this machine's name; the undo put it back.
                #expect(hostnameAfter == machineHostname())
                #expect(try good.load() == old)
            }
        }
    }

    @Test func hostsFileLines() throws {
        let name = try Hostname("gw1")
        #expect(
            String(decoding: ApplianceHost.hosts(nil, hostname: name), as: UTF8.self)
                == "127.0.0.1\tlocalhost\n::1\t\tlocalhost ip6-localhost ip6-loopback\n127.0.1.1\tgw1\n"
        )
        #expect(
            String(
                decoding: ApplianceHost.hosts(
                    Array("127.0.1.1 old old.x\n10.0.0.1 db\n".utf8), hostname: name), as: UTF8.self
            )
                == "127.0.1.1\tgw1\n10.0.0.1 db\n")
        #expect(
            String(
                decoding: ApplianceHost.hosts(Array("10.0.0.1 db".utf8), hostname: name),
                as: UTF8.self)
                == "10.0.0.1 db\n127.0.1.1\tgw1\n")
    }
}
