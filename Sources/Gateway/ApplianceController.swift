import Appliance
import ControlAPI
import Dispatch
import HostConfiguration
import Netlink
import Packet
import Synchronization

/// The appliance half of vtepd's control socket: the host's settings (hostname, interfaces,
/// routes, DNS, NTP, users). Each change is checked against the typed settings, applied to
/// the host and saved atomically (`ApplianceHost.applyAndSave`, all or nothing), then written
/// to the audit log with the user the kernel vouches for (SO_PEERCRED). A change that fails
/// is rolled back by `applyAndSave` and returned as the error; a refusal is audited too.
///
/// Changes are serialised: the lock is held from reading the current settings to saving the
/// new ones, so two shells can never both start from the same old settings.
public final class ApplianceController: Sendable {
    public let host: ApplianceHost
    public let store: ApplianceSettingsStore
    public let audit: AuditLog
    /// Restart, reboot and update, through systemd.
    public let lifecycle: SystemLifecycle
    private let current: Mutex<ApplianceSettings>
    private let dhcp = Mutex<DHCPClients?>(nil)
    /// Where `handleOffThePool` runs the blocking work: one thread, in order.
    private let work = DispatchQueue(label: "vtepd appliance work")
    /// What each interface's DHCP client last reported, for `show network interface`.
    private let dhcpStatus = Mutex<[InterfaceName: String]>([:])

    /// Loads the saved settings (none saved: the defaults, which change nothing). A saved
    /// file that cannot be read is an error: vtepd must not overwrite it with defaults.
    public init(
        host: ApplianceHost, store: ApplianceSettingsStore, audit: AuditLog,
        lifecycle: SystemLifecycle? = nil
    ) throws(ApplianceSettingsStoreError) {
        self.host = host
        self.store = store
        self.audit = audit
        self.lifecycle =
            lifecycle
            ?? SystemLifecycle(
                stateDirectory: String(
                    store.path[..<(store.path.lastIndex(of: "/") ?? store.path.startIndex)]))
        current = Mutex(try store.load() ?? ApplianceSettings())
    }

    /// The settings in force.
    public var settings: ApplianceSettings { current.withLock { $0 } }

    /// Makes the host match the saved settings again (at vtepd's start): first everything but
    /// the passwords, then the passwords, so that a shadow file that cannot take them (the
    /// account was removed, the file is damaged) costs the login password only, never the
    /// appliance's addresses and routes. Throws the first part's refusal, else the second's.
    public func restore() throws(HostConfigurationError) {
        try current.withLock { settings throws(HostConfigurationError) in
            var passwordsOnly = ApplianceSettings()
            for user in settings.users { passwordsOnly.setUser(user) }
            // Users in `old` that equal `new`'s are taken as applied: no password step here.
            try host.apply(settings, replacing: passwordsOnly)
            try host.apply(settings, replacing: settings.withoutUsers)
        }
    }

    // MARK: DHCP

    /// From now on, runs a DHCP client on each interface configured for DHCP (and not set
    /// down); starts those the settings in force ask for.
    public func attach(dhcp clients: DHCPClients) {
        dhcp.withLock { $0 = clients }
        reconcileDHCP()
    }

    private func reconcileDHCP() {
        guard let clients = dhcp.withLock({ $0 }) else { return }
        let names = settings.interfaces.filter { $0.addressing == .dhcp && $0.isUp != false }
            .map(\.name)
        clients.reconcile(Set(names))
        dhcpStatus.withLock { status in
            for name in status.keys where !names.contains(name) { status[name] = nil }
            for name in names where status[name] == nil { status[name] = "asking for a lease" }
        }
    }

    /// Applies what a DHCP client reports (`DHCPHookServer`'s pairs: `event`, `interface` and
    /// udhcpc's variables); returns nil when done, or why it was refused. The values come
    /// from a DHCP server, so each is checked first; a lease for an interface no longer in
    /// DHCP mode (a client being stopped) is refused. Each event but a plain renewal goes to
    /// the audit log as `dhcp IF EVENT …`, under the hook's credentials (root).
    public func dhcpEvent(_ pairs: [String: String], from peer: PeerCredentials) -> String? {
        let interfaceText = pairs["interface"] ?? ""
        let name: InterfaceName
        let event: DHCPEvent
        do {
            name = try InterfaceName(interfaceText)
            event = try DHCPEvent(udhcpcEvent: pairs["event"] ?? "", environment: pairs)
        } catch {
            let reason = "\(error)"
            try? audit.append(
                credentials: peer, command: "dhcp \(DHCPEvent.printable(interfaceText))",
                result: .refused(reason))
            return reason
        }
        let line = "dhcp \(name) \(event)"
        func record(_ result: AuditResult) {
            try? audit.append(credentials: peer, command: line, result: result)
        }
        let lease: DHCPLease?
        switch event {
        case .noAnswer, .refused:
            // An address the interface holds without a lease of this vtepd (a previous one's,
            // kept across the restart and asked for again) is not confirmed: it goes.
            let failure: String? = current.withLock { settings in
                guard settings.dhcpLeases[name] == nil else { return nil }
                do {
                    try host.removeIPv4Addresses(of: name, keeping: nil)
                } catch {
                    return "\(error)"
                }
                return nil
            }
            dhcpStatus.withLock { $0[name] = "no lease: \(event)" }
            if let failure {
                record(.refused(failure))
                return failure
            }
            record(.accepted)
            return nil
        case .deconfig: lease = nil
        case .bound(let granted, _): lease = granted
        }
        // A client starting (its first deconfig) while the interface holds the address of a
        // previous vtepd's lease: that address stays while the client asks for it again. (A
        // client stopped because the interface leaves DHCP mode deconfigures it all.)
        let starting = dhcp.withLock { $0 }?.isWanted(name) == true
        let refusal: String? = current.withLock { settings in
            if lease == nil && settings.dhcpLeases[name] == nil && starting { return nil }
            var new = settings
            do {
                try new.setLease(lease, on: name)
                if new == settings && lease != nil { return nil }  // a renewal of the same lease
                try host.apply(new, replacing: settings)
                // The lease's address alone: one an earlier lease left goes too.
                try host.removeIPv4Addresses(of: name, keeping: lease?.address)
            } catch {
                return "\(error)"
            }
            settings = new
            return nil
        }
        if let refusal {
            record(.refused(refusal))
            return refusal
        }
        dhcpStatus.withLock {
            $0[name] = lease.map { "bound \($0)" } ?? "asking for a lease"
        }
        if case .bound(_, renewal: true) = event {} else { record(.accepted) }
        return nil
    }

    /// Writes one audit entry for `command`; a failure to write is returned as a sentence.
    public func record(_ command: any ControlCommand, peer: PeerCredentials, result: AuditResult)
        -> String?
    {
        do {
            try audit.append(credentials: peer, command: command.shellLine, result: result)
            return nil
        } catch {
            return "the audit log \(audit.path) could not be written: \(error)"
        }
    }

    /// `body` on a thread of its own: the appliance's work blocks (netlink, fsync, yescrypt,
    /// chronyc, waiting for a DHCP client to release its lease), and on the cooperative pool
    /// (two threads on a two-core appliance) it would stall vtepd's control plane meanwhile.
    func offThePool(_ body: @escaping @Sendable () throws(ControlFailure) -> ControlResult)
        async throws(ControlFailure) -> ControlResult
    {
        let outcome: Result<ControlResult, ControlFailure> = await withCheckedContinuation {
            continuation in
            work.async {
                do throws(ControlFailure) {
                    continuation.resume(returning: .success(try body()))
                } catch {
                    continuation.resume(returning: .failure(error))
                }
            }
        }
        return try outcome.get()
    }

    /// Registers the handler of each appliance command (run off the cooperative pool, one at
    /// a time, in order). Changes are audited by the caller of the handler.
    public func register(in handlers: inout ControlHandlers) {
        func on<C: ControlCommand>(
            _ type: C.Type, _ body: @escaping @Sendable (C) throws(ControlFailure) -> ControlResult
        ) {
            handlers.on(type) { command, _ throws(ControlFailure) in
                try await self.offThePool { () throws(ControlFailure) in try body(command) }
            }
        }
        /// A settings change: `edit` applied to the settings in force.
        func change<C: ControlCommand>(
            _ type: C.Type,
            _ edit:
                @escaping @Sendable (C, inout ApplianceSettings) throws(ApplianceSettingsError)
                -> Void
        ) {
            on(type) { command throws(ControlFailure) in
                // An interface leaving DHCP mode (a static address, or down): its client
                // releases the lease first, from the leased address, before the change removes
                // it. Should the change be refused, reconcileDHCP starts the client again.
                let leaving: InterfaceName? =
                    switch command {
                    case let c as SetInterfaceAddress: c.interface
                    case let c as SetInterfaceState where c.state == .down: c.interface
                    case let c as ClearInterfaceAddressing: c.interface
                    default: nil
                    }
                if let leaving, self.settings.interface(leaving)?.addressing == .dhcp,
                    let clients = self.dhcp.withLock({ $0 })
                {
                    clients.stopAndWait(leaving)
                }
                defer { self.reconcileDHCP() }
                try self.change { settings throws(ApplianceSettingsError) in
                    try edit(command, &settings)
                }
                return .accepted
            }
        }

        handlers.on(AuditRefusedInput.self) { command, peer throws(ControlFailure) in
            try await self.offThePool { () throws(ControlFailure) in
                // The audit log escapes both, so a hostile line stays one entry on one line.
                if let problem = self.record(command, peer: peer, result: .refused(command.reason))
                {
                    throw ControlFailure(problem)
                }
                return .lines([])
            }
        }
        /// A lifecycle command: `body` with the caller's home directory.
        func lifecycle<C: ControlCommand>(
            _ type: C.Type,
            _ body:
                @escaping @Sendable (C, _ home: String, _ uid: UInt32) throws(ControlFailure)
                -> ControlResult
        ) {
            handlers.on(type) { command, peer throws(ControlFailure) in
                guard let home = peer.homeDirectory else {
                    throw ControlFailure("uid \(peer.uid) has no home directory")
                }
                return try await self.offThePool { () throws(ControlFailure) in
                    try body(command, home, peer.uid)
                }
            }
        }
        lifecycle(RestartService.self) { _, _, _ throws(ControlFailure) in
            do { try self.lifecycle.restartService() } catch { throw ControlFailure("\(error)") }
            return .accepted
        }
        lifecycle(Reboot.self) { _, _, _ throws(ControlFailure) in
            do { try self.lifecycle.reboot() } catch { throw ControlFailure("\(error)") }
            return .accepted
        }
        lifecycle(ShowSystemUpdate.self) { _, home, _ in
            .lines(self.lifecycle.updateReport(home: home))
        }
        lifecycle(UpdateSystem.self) { command, home, uid throws(ControlFailure) in
            do {
                _ = try self.lifecycle.update(file: command.file, home: home, owner: uid)
            } catch { throw ControlFailure("\(error)") }
            return .accepted
        }
        on(ShowHostname.self) { _ in
            .lines([self.settings.hostname?.text ?? self.host.kernelHostname.get()])
        }
        on(ShowInterfaces.self) { command throws(ControlFailure) in
            .interfaces(try self.interfaces(command.interface))
        }
        on(ShowRoutes.self) { _ throws(ControlFailure) in .routes(try self.routes()) }
        on(ShowDNSServers.self) { _ in .lines(self.settings.dnsServers.map(\.description)) }
        on(ShowNTPServers.self) { _ in .lines(self.ntpServers()) }
        on(ShowSearchDomains.self) { _ in .lines(self.settings.dnsSearchDomains.map(\.text)) }
        on(ShowLog.self) { command throws(ControlFailure) in
            do {
                return .lines(try self.audit.lastEntries(command.lines ?? ShowLog.defaultLines))
            } catch {
                throw ControlFailure("cannot read the audit log: \(error)")
            }
        }
        on(SetPassword.self) { command throws(ControlFailure) in
            // Hashed here, outside the lock: yescrypt is slow on purpose.
            let hash: PasswordHash
            do {
                hash = try PasswordHash(hashing: command.password)
            } catch {
                throw ControlFailure("\(error)")
            }
            try self.change { settings in
                settings.setUser(ApplianceUser(name: command.user, passwordHash: hash))
            }
            return .accepted
        }
        on(SetInterfaceDHCP.self) { command throws(ControlFailure) in
            if let problem = self.dhcp.withLock({ $0 })?.problem() {
                throw ControlFailure(problem)
            }
            try self.change { settings throws(ApplianceSettingsError) in
                try settings.updateInterface(command.interface) { $0.addressing = .dhcp }
            }
            self.reconcileDHCP()
            return .accepted
        }
        change(SetHostname.self) { command, settings in settings.hostname = command.name }
        change(SetInterfaceAddress.self) { command, settings throws(ApplianceSettingsError) in
            try settings.updateInterface(command.interface) {
                $0.addressing = .staticIPv4(command.address)
            }
        }
        change(SetInterfaceMTU.self) { command, settings throws(ApplianceSettingsError) in
            try settings.updateInterface(command.interface) { i throws(ApplianceSettingsError) in
                try i.setMTU(command.mtu)
            }
        }
        change(SetInterfaceState.self) { command, settings throws(ApplianceSettingsError) in
            try settings.updateInterface(command.interface) { $0.isUp = command.state == .up }
        }
        change(AddRoute.self) { command, settings throws(ApplianceSettingsError) in
            try settings.addRoute(command.route)
        }
        change(RemoveRoute.self) { command, settings throws(ApplianceSettingsError) in
            try settings.removeRoute(command.route)
        }
        change(ClearRoutes.self) { _, settings in settings.clearRoutes() }
        change(AddDNSServer.self) { command, settings throws(ApplianceSettingsError) in
            try settings.addDNSServer(command.server)
        }
        change(RemoveDNSServer.self) { command, settings throws(ApplianceSettingsError) in
            try settings.removeDNSServer(command.server)
        }
        change(ClearDNSServers.self) { _, settings in settings.clearDNSServers() }
        change(AddNTPServer.self) { command, settings throws(ApplianceSettingsError) in
            try settings.addNTPServer(command.server)
        }
        change(RemoveNTPServer.self) { command, settings throws(ApplianceSettingsError) in
            try settings.removeNTPServer(command.server)
        }
        change(AddSearchDomain.self) { command, settings throws(ApplianceSettingsError) in
            try settings.addSearchDomain(command.domain)
        }
        change(RemoveSearchDomain.self) { command, settings throws(ApplianceSettingsError) in
            try settings.removeSearchDomain(command.domain)
        }
        change(ClearSearchDomains.self) { _, settings in settings.clearSearchDomains() }
        change(ClearNTPServers.self) { _, settings in settings.clearNTPServers() }
        change(ClearInterfaceAddressing.self) { command, settings throws(ApplianceSettingsError) in
            try settings.updateInterface(command.interface) { $0.addressing = nil }
        }
    }

    /// Applies `edit` to the settings in force, to the host, and saves the result (all or
    /// nothing, `applyAndSave`). The lock is held from reading the settings to saving them.
    func change(
        _ edit: (inout ApplianceSettings) throws(ApplianceSettingsError) -> Void
    ) throws(ControlFailure) {
        try current.withLock { settings throws(ControlFailure) in
            var new = settings
            do {
                try edit(&new)
                try host.applyAndSave(new, replacing: settings, to: store)
            } catch {
                throw ControlFailure("\(error)")
            }
            settings = new
        }
    }

    private func interfaces(_ name: InterfaceName?) throws(ControlFailure) -> [InterfaceReport] {
        let links: [HostLink]
        do {
            links = try host.interfaces()
        } catch {
            throw ControlFailure("cannot read the interfaces: \(error)")
        }
        let settings = self.settings
        let wanted = links.filter { name == nil || $0.name == name?.text }
        if let name, wanted.isEmpty {
            throw ControlFailure(
                "this host has no interface \(name) (interfaces: "
                    + links.map(\.name).joined(separator: ", ") + ")")
        }
        return wanted.map { link in
            let configured: String? =
                switch (try? InterfaceName(link.name)).flatMap({ settings.interface($0) })?
                    .addressing
                {
                case .staticIPv4(let address)?: "static \(address)"
                case .dhcp?:
                    "dhcp, "
                        + ((try? InterfaceName(link.name)).flatMap { name in
                            dhcpStatus.withLock { $0[name] }
                        } ?? "no DHCP client running")
                case nil: nil
                }
            let c = link.counters
            return InterfaceReport(
                name: link.name, adminState: link.isAdministrativelyUp ? "up" : "down",
                operationalState: link.operationalState, mtu: link.mtu,
                mac: link.macAddress?.description,
                addresses: link.addresses.map { "\($0.address)/\($0.prefixLength)" },
                configured: configured, rxPackets: c.receivedPackets, rxBytes: c.receivedBytes,
                rxErrors: c.receiveErrors, rxDropped: c.receiveDropped, txPackets: c.sentPackets,
                txBytes: c.sentBytes, txErrors: c.sendErrors, txDropped: c.sendDropped)
        }
    }

    /// The configured servers, then what chronyd makes of its sources: a host name is
    /// listed by chronyd under the address it resolved to.
    private func ntpServers() -> [String] {
        let configured = settings.ntpServers.map(\.description)
        var lines = configured
        do {
            guard let sources = try host.chronySources() else {
                if !configured.isEmpty {
                    lines.append("chronyd is not running: it uses these servers when it starts")
                }
                return lines
            }
            lines.append("chronyd's sources:")
            if sources.isEmpty { lines.append("  (none)") }
            for source in sources {
                lines.append(
                    "  \(source.address)  \(source.state), stratum \(source.stratum), reach \(source.reach)"
                        + (source.lastSampleAge.map { ", last sample \($0) s ago" } ?? ""))
            }
        } catch {
            lines.append("chronyd did not answer: \(error)")
        }
        return lines
    }

    private func routes() throws(ControlFailure) -> [RouteReport] {
        let routes: [HostRoute]
        let links: [HostLink]
        do {
            routes = try host.routes()
            links = try host.interfaces()
        } catch {
            throw ControlFailure("cannot read the routes: \(error)")
        }
        let configured = settings.routes
        return routes.map { route in
            RouteReport(
                destination: route.destination.length == 0 ? "default" : "\(route.destination)",
                gateway: route.gateway?.description,
                interface: route.interfaceIndex.flatMap { index in
                    links.first { $0.index == index }?.name
                },
                origin: route.origin,
                configured: configured.contains {
                    $0.destination == route.destination && $0.gateway == route.gateway
                })
        }
    }
}

extension ApplianceSettings {
    /// The commands that rebuild these settings, for `show running-config`. Passwords are
    /// not among them: a hash is not for printing.
    public var commands: [any ControlCommand] {
        var commands: [any ControlCommand] = []
        if let hostname { commands.append(SetHostname(hostname)) }
        for interface in interfaces {
            switch interface.addressing {
            case .staticIPv4(let address)?:
                commands.append(SetInterfaceAddress(interface.name, address))
            case .dhcp?: commands.append(SetInterfaceDHCP(interface.name))
            case nil: break
            }
            if let mtu = interface.mtu {
                commands.append(SetInterfaceMTU(interface.name, mtu: mtu))
            }
            if let up = interface.isUp {
                commands.append(SetInterfaceState(interface.name, up ? .up : .down))
            }
        }
        commands += routes.map { AddRoute($0) }
        commands += dnsServers.map { AddDNSServer($0) }
        commands += dnsSearchDomains.map { AddSearchDomain($0) }
        commands += ntpServers.map { AddNTPServer($0) }
        switch metrics {
        case .listen(let endpoint)?: commands.append(SetMetricsListen(endpoint))
        case .off?: commands.append(ClearMetrics())
        case nil: break
        }
        return commands
    }
}
