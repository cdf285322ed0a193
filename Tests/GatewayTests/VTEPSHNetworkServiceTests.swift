import Appliance
import ControlAPI
import Foundation
import HostConfiguration
import ProcessSpawning
import TestSupport
import Testing

/// The appliance's network services against real peers: DHCP addressing through busybox
/// udhcpc (run by vtepd) from a dnsmasq DHCP server, and NTP servers through chronyd from a
/// chronyd serving time. vtepd runs as in VTEPSHTests: its own network and UTS namespace,
/// files under a temporary appliance root.
@Suite(.serialized) struct VTEPSHNetworkServiceTests {
    /// What a DHCP server in its own namespace hands out on a veth to vtepd's namespace.
    struct DHCPServer {
        let namespace: String
        /// vtepd's side of the veth.
        let lan: String
        let leases: String
        let process: LabProcess

        init(_ lab: Lab, site: ShellSite) throws {
            namespace = try lab.namespace("d")
            let (lan, serverSide) = try lab.veth("l", in: site.namespace, "s", in: namespace)
            self.lan = lan
            try lab.execute(
                ["ip", "addr", "add", "198.51.100.1/24", "dev", serverSide], in: namespace)
            leases = lab.file("dnsmasq.leases").path
            // dnsmasq as a DHCP server only (--port=0: no DNS), no config file, in the
            // foreground so the lab stops it by PID.
            process = try lab.start(
                "dnsmasq",
                [
                    "dnsmasq", "--no-daemon", "--conf-file=/dev/null", "--port=0",
                    "--interface=\(serverSide)", "--bind-interfaces", "--user=root",
                    "--dhcp-range=198.51.100.50,198.51.100.59,255.255.255.0,10m",
                    "--dhcp-option=option:router,198.51.100.1",
                    "--dhcp-option=option:dns-server,198.51.100.53",
                    "--dhcp-option=option:domain-search,lab.example",
                    "--dhcp-leasefile=\(leases)", "--pid-file=", "--log-dhcp",
                ], in: namespace)
        }

        /// Puts `lan` in DHCP mode through the shell and waits for a lease's address on it;
        /// returns what reads `lan`'s IPv4 addresses (`ip -o -4 addr show`).
        func leaseOnLAN(_ lab: Lab, _ site: ShellSite) throws -> () throws -> String {
            try site.shell(lab, "set network interface \(lan) ip config dhcp")
            let lan = lan
            let addresses = {
                try lab.execute(["ip", "-o", "-4", "addr", "show", "dev", lan], in: site.namespace)
                    .output
            }
            try waitUntil("a leased address on \(lan)", timeout: .seconds(60)) {
                try addresses().contains("inet 198.51.100.5")
            }
            return addresses
        }

        /// The MACs dnsmasq holds a lease for (its lease file: expiry, MAC, address, …).
        func leasedMACs() -> [String] {
            let text = (try? String(contentsOfFile: leases, encoding: .utf8)) ?? ""
            return text.split(separator: "\n").compactMap {
                $0.split(separator: " ").dropFirst().first.map(String.init)
            }
        }
    }

    /// Kills, by the PID in its PID file, a udhcpc vtepd left behind (only if a test failed
    /// before vtepd stopped it): it would outlive the lab's namespaces.
    static func stopLeftoverClients(_ site: ShellSite) {
        let files = (try? FileManager.default.contentsOfDirectory(atPath: site.state)) ?? []
        for file in files where file.hasPrefix("udhcpc-") && file.hasSuffix(".pid") {
            if let text = try? String(contentsOfFile: site.state + "/" + file, encoding: .utf8),
                let pid = Int32(text.trimmingCharacters(in: .whitespacesAndNewlines)), pid > 1,
                let command = try? String(contentsOfFile: "/proc/\(pid)/cmdline", encoding: .utf8),
                command.contains("udhcpc")
            {
                kill(pid, SIGKILL)
            }
        }
    }

    @Test func dhcpAddressingTakesALeaseAppliesItAndGivesItBack() async throws {
        try await Lab.runOnOwnThread { lab in
            let site = try ShellSite(lab)
            defer { Self.stopLeftoverClients(site) }
            let server = try DHCPServer(lab, site: site)
            let lan = server.lan
            var vtepd = try site.startVTEPD()
            let mac = try lab.execute(
                ["cat", "/sys/class/net/\(lan)/address"], in: site.namespace
            ).output.trimmingCharacters(in: .whitespacesAndNewlines)
            let addresses = try server.leaseOnLAN(lab, site)
            let leased = try addresses()
            #expect(leased.contains("/24"), "\(leased)")
            let routes = try lab.execute(["ip", "route"], in: site.namespace).output
            #expect(routes.contains("default via 198.51.100.1 dev \(lan)"), "\(routes)")
            let resolv = try site.file("etc/resolv.conf")
            #expect(resolv.contains("nameserver 198.51.100.53\n"), "\(resolv)")
            #expect(resolv.contains("search lab.example\n"), "\(resolv)")
            #expect(server.leasedMACs() == [mac], "\(server.leasedMACs())")
            let details = try site.shell(lab, "show network interface \(lan)")
            #expect(details.contains("dhcp, bound 198.51.100.5"), "\(details)")
            #expect(details.contains("router 198.51.100.1"), "\(details)")
            #expect(details.contains("from 198.51.100.1"), "\(details)")
            #expect(
                try site.shell(lab, "show running-config").contains(
                    "set network interface \(lan) ip config dhcp"))
            #expect(try site.shell(lab, "show log").contains("dhcp \(lan) bound 198.51.100.5"))
            // The lease is state, not configuration: it is not saved.
            #expect(!(try site.savedSettingsText().contains("198.51.100.5")))

            // A restart keeps the lease: the stop releases nothing and leaves the address, and
            // the new client asks the server for that address again. The address is never
            // removed on the way, which `ip monitor` would show as a Deleted line.
            let address = try #require(
                leased.split(separator: " ").first { $0.hasPrefix("198.51.100.5") })
            let events = lab.file("address-events")
            let monitor = try lab.start(
                "ip-monitor", ["ip", "-o", "monitor", "address"], in: site.namespace,
                output: events)
            #expect(vtepd.stop() == 0)
            #expect(server.leasedMACs() == [mac], "the lease is kept at vtepd's stop")
            #expect(try addresses().contains("inet \(address)"), "the address stays")
            vtepd = try site.startVTEPD()
            try waitUntil("the restarted vtepd's client bound again", timeout: .seconds(60)) {
                try site.shell(lab, "show network interface \(lan)").contains(
                    "dhcp, bound \(address.split(separator: "/")[0])")
            }
            monitor.stop()
            let changes = (try? String(contentsOf: events, encoding: .utf8)) ?? ""
            #expect(
                !changes.split(separator: "\n").contains {
                    $0.hasPrefix("Deleted") && $0.contains(" \(lan) ")
                }, "\(changes)")
            #expect(try addresses().contains("inet \(address)"))
            #expect(server.leasedMACs() == [mac])

            // Static addressing stops the client: the lease is released, its address, route and
            // DNS server leave, and the static address is all there is.
            try site.shell(
                lab, "set network interface \(lan) ip config static 198.51.100.9 255.255.255.0")
            try waitUntil("dnsmasq to see the release when the address became static") {
                server.leasedMACs().isEmpty
            }
            let now = try addresses()
            #expect(now.contains("inet 198.51.100.9/24"), "\(now)")
            #expect(!now.contains("198.51.100.5"), "\(now)")
            let routesAfter = try lab.execute(["ip", "route"], in: site.namespace).output
            #expect(!routesAfter.contains("default"), "\(routesAfter)")
            #expect(!(try site.file("etc/resolv.conf").contains("198.51.100.53")))
            let running = try lab.attempt(["pgrep", "-a", "-f", "udhcpc .*-i \(lan)"])
            #expect(running.status == 1, "a client still runs: \(running.output)")
            #expect(vtepd.stop() == 0)
        }
    }

    /// vtepd restarted after a lease on the DHCP lab's interface, with the server gone: the
    /// lease's address is kept at the stop, and the new client gets no answer. `body` gets
    /// the site, the interface, the new vtepd and what reads the interface's IPv4 addresses.
    static func restartedWithoutServer(
        _ lab: Lab, _ body: (ShellSite, String, LabProcess, () throws -> String) throws -> Void
    ) throws {
        let site = try ShellSite(lab)
        defer { stopLeftoverClients(site) }
        let server = try DHCPServer(lab, site: site)
        var vtepd = try site.startVTEPD()
        let addresses = try server.leaseOnLAN(lab, site)
        #expect(vtepd.stop() == 0)
        #expect(try addresses().contains("inet 198.51.100.5"), "kept at the stop")
        server.process.stop()
        vtepd = try site.startVTEPD()
        try body(site, server.lan, vtepd, addresses)
        #expect(vtepd.stop() == 0)
    }

    /// The address a restart keeps is a previous lease's, not yet confirmed: when no server
    /// answers the new client, it goes (as a deconfig would have removed it).
    @Test func aKeptAddressGoesWhenNoServerConfirmsIt() async throws {
        try await Lab.runOnOwnThread { lab in
            try Self.restartedWithoutServer(lab) { site, lan, _, addresses in
                try waitUntil("the unconfirmed address leaves \(lan)", timeout: .seconds(60)) {
                    try !addresses().contains("inet ")
                }
                let details = try site.shell(lab, "show network interface \(lan)")
                #expect(details.contains("no lease"), "\(details)")
                #expect(try site.shell(lab, "show log").contains("dhcp \(lan) leasefail"))
            }
        }
    }

    /// An interface leaving DHCP mode while it holds a kept, unconfirmed address (the server
    /// has not answered since the restart): that address goes with the mode.
    @Test func aKeptAddressGoesWhenTheInterfaceLeavesDHCPMode() async throws {
        try await Lab.runOnOwnThread { lab in
            try Self.restartedWithoutServer(lab) { site, lan, _, addresses in
                // The log holds the first vtepd's client's reports too: one deconfig at its
                // start (it was killed at the stop, so none at its end), then the new one's.
                try waitUntil("the new client's first report") {
                    try site.shell(lab, "show log").components(separatedBy: "dhcp \(lan) deconfig")
                        .count == 3
                }
                #expect(try addresses().contains("inet 198.51.100.5"), "kept while unconfirmed")
                try site.shell(
                    lab,
                    "set network interface \(lan) ip config static 198.51.100.9 255.255.255.0")
                let now = try addresses()
                #expect(now.contains("inet 198.51.100.9/24"), "\(now)")
                #expect(!now.contains("198.51.100.5"), "\(now)")
            }
        }
    }

    /// The hook socket takes only well-formed reports for interfaces in DHCP mode; what a
    /// DHCP server could put in its options never reaches the host unchecked.
    @Test func dhcpReportsAreCheckedBeforeTheyReachTheHost() async throws {
        try await Lab.runOnOwnThread { lab in
            let site = try ShellSite(lab)
            defer { Self.stopLeftoverClients(site) }
            let vtepd = try site.startVTEPD()
            let hook = try ShellSite.executable("vtep-dhcp-event").path
            func report(_ event: String, _ variables: [String: String]) throws -> LabCommandResult {
                var environment = ["VTEPD_DHCP_HOOK_SOCKET=\(site.state)/dhcp-hook.sock"]
                for (key, value) in variables { environment.append("\(key)=\(value)") }
                return try lab.attempt(["env", "-i"] + environment + [hook, event])
            }
            let port = site.port
            // Not in DHCP mode: refused.
            let notDHCP = try report(
                "bound", ["interface": port, "ip": "203.0.113.7", "mask": "24"])
            #expect(notDHCP.status == 1)
            #expect(notDHCP.errors.contains("no DHCP addressing on interface"), "\(notDHCP.errors)")

            // In DHCP mode (no server on this port: the client keeps asking), bad values are
            // refused one by one and nothing changes.
            try site.shell(lab, "set network interface \(port) ip config dhcp")
            // IPv4 only: the port's IPv6 link-local address may still be finishing DAD.
            let before = try lab.execute(
                ["ip", "-o", "-4", "addr", "show", "dev", port], in: site.namespace
            )
            .output
            for (variables, complaint) in [
                (["ip": "203.0.113.7", "mask": "33"], "no usable subnet mask"),
                (["ip": "127.0.0.9", "mask": "8"], "loopback"),
                (["ip": "203.0.113.7", "mask": "24", "router": "203.0.113.1;reboot"], "router"),
                (["ip": "203.0.113.7", "mask": "24", "dns": "$(id)"], "DNS server"),
                (["ip": "203.0.113.7", "mask": "24", "domain": "../../etc"], "domain"),
                (["ip": "203.0.113.7", "mask": "24", "lease": "-5"], "lease time"),
            ] {
                var all = variables
                all["interface"] = port
                let result = try report("bound", all)
                #expect(result.status == 1, "\(variables)")
                #expect(result.errors.contains(complaint), "\(variables): \(result.errors)")
            }
            let after = try lab.execute(
                ["ip", "-o", "-4", "addr", "show", "dev", port], in: site.namespace
            ).output
            #expect(after == before, "before: \(before) after: \(after)")
            // A good report is applied, as udhcpc's would be; after the client's own first
            // report (`deconfig`), so that the two cannot cross.
            try waitUntil("the DHCP client's first report") {
                try site.shell(lab, "show log").contains("dhcp \(port) deconfig")
            }
            let good = try report(
                "bound",
                [
                    "interface": port, "ip": "203.0.113.7", "mask": "24",
                    "router": "203.0.113.1", "dns": "203.0.113.53", "lease": "600",
                ])
            #expect(good.status == 0, "\(good.errors)")
            #expect(
                try lab.execute(
                    ["ip", "-o", "-4", "addr", "show", "dev", port], in: site.namespace
                )
                .output.contains("inet 203.0.113.7/24"))
            #expect(try site.file("etc/resolv.conf").contains("nameserver 203.0.113.53\n"))
            let log = try site.shell(lab, "show log")
            #expect(log.contains("refused"), "\(log)")
            #expect(vtepd.stop() == 0)
        }
    }

    /// NTP servers reach a real chronyd (in vtepd's namespace, `-x`: it never sets this
    /// machine's clock) through its sourcedir and `chronyc reload sources`, without a restart,
    /// and chronyd synchronises to a second chronyd serving time on the lab's network.
    @Test func ntpServersReachChronydAndItSynchronises() async throws {
        try await Lab.runOnOwnThread { lab in
            let site = try ShellSite(lab)
            let timeServer = try lab.namespace("t")
            let (local, remote) = try lab.veth("n", in: site.namespace, "m", in: timeServer)
            try lab.execute(
                ["ip", "addr", "add", "203.0.113.1/24", "dev", local], in: site.namespace)
            try lab.execute(
                ["ip", "addr", "add", "203.0.113.123/24", "dev", remote], in: timeServer)

            // chronyd wants its socket directories private (0700 or 0750).
            let serverDirectory = lab.file("ntp-server").path
            let runDirectory = site.root + "/run/chrony"
            for directory in [serverDirectory, runDirectory, site.root + "/etc/chrony/sources.d"] {
                try FileManager.default.createDirectory(
                    atPath: directory, withIntermediateDirectories: true,
                    attributes: [.posixPermissions: 0o700])
            }
            try """
            local stratum 8
            allow
            bindcmdaddress \(serverDirectory)/chronyd.sock
            cmdport 0
            pidfile \(serverDirectory)/chronyd.pid
            """.write(toFile: serverDirectory + "/chrony.conf", atomically: true, encoding: .utf8)
            // The appliance's chrony.conf: the shape of Debian's, with the paths under the root.
            try """
            sourcedir \(site.root)/etc/chrony/sources.d
            bindcmdaddress \(runDirectory)/chronyd.sock
            cmdport 0
            pidfile \(runDirectory)/chronyd.pid
            """.write(
                toFile: site.root + "/etc/chrony/chrony.conf", atomically: true, encoding: .utf8)
            _ = try lab.start(
                "chronyd-server",
                ["chronyd", "-x", "-d", "-u", "root", "-f", serverDirectory + "/chrony.conf"],
                in: timeServer)
            let client = try lab.start(
                "chronyd",
                ["chronyd", "-x", "-d", "-u", "root", "-f", site.root + "/etc/chrony/chrony.conf"],
                in: site.namespace)
            try waitUntil("chronyd's command socket") {
                try client.requireRunning()
                return FileManager.default.fileExists(atPath: runDirectory + "/chronyd.sock")
            }
            let vtepd = try site.startVTEPD()
            #expect(try site.shell(lab, "show network ntp-servers").contains("(none)"))

            try site.shell(lab, "add network ntp-server 203.0.113.123")
            try waitUntil("chronyd to synchronise to 203.0.113.123", timeout: .seconds(60)) {
                try site.shell(lab, "show network ntp-servers").contains(
                    "203.0.113.123  synchronised, stratum 8")
            }
            let listed = try lab.execute([
                "chronyc", "-h", runDirectory + "/chronyd.sock", "-n", "sources",
            ]).output
            #expect(listed.contains("203.0.113.123"), "\(listed)")

            // Removing it takes it out of chronyd too, again without a restart.
            try site.shell(lab, "remove network ntp-server 203.0.113.123")
            let after = try lab.execute([
                "chronyc", "-h", runDirectory + "/chronyd.sock", "-n", "sources",
            ]).output
            #expect(!after.contains("203.0.113.123"), "\(after)")
            try client.requireRunning()
            #expect(vtepd.stop() == 0)
        }
    }
}
