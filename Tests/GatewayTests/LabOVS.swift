import Foundation
import TestSupport

/// Open vSwitch's userspace datapath (`datapath_type=netdev`) as a lab site's VTEP: this
/// kernel has no gretap, so OVS netdev is the GRE peer vtepd is tested against.
///
/// Layout (OVS Documentation/howto/userspace-tunneling, as
/// Tests/PacketTests/Fixtures/capture-ovs-gre.sh records it), in the site's gateway
/// namespace:
///
///     host ── access veth ── br-int (netdev) ── gre0 (type=gre, remote_ip, key)
///                            br-phy (netdev) ── underlay veth ── underlay switch
///                              tunnel IPs on br-phy's internal port (a tap)
///
/// ovsdb-server and ovs-vswitchd run with their own database, pidfile, control sockets and
/// logs under the lab's directory (never /var/run/openvswitch, ovs-ctl or systemd), started
/// by the lab and stopped by PID when it ends.
struct LabOVS: Sendable {
    let lab: Lab
    let site: LabSite
    /// Where the daemons run: the site's gateway namespace for a VTEP, its host namespace for
    /// a host's VLAN switch (`startVLANHost`).
    let namespace: String
    let directory: URL
    let ovsdbServer: LabProcess
    let vswitchd: LabProcess

    var database: String { "unix:" + directory.appendingPathComponent("db.sock").path }
    var vswitchdControl: String { directory.appendingPathComponent("vswitchd.ctl").path }

    /// `ovs-vsctl --db=unix:DIR/db.sock ARGUMENTS` in `namespace`.
    @discardableResult
    func vsctl(_ arguments: [String]) throws -> LabCommandResult {
        try lab.execute(
            ["ovs-vsctl", "--timeout=20", "--db=\(database)"] + arguments, in: namespace)
    }

    /// `ovs-appctl -t DIR/vswitchd.ctl ARGUMENTS` in `namespace`.
    @discardableResult
    func appctl(_ arguments: [String]) throws -> LabCommandResult {
        try lab.execute(
            ["ovs-appctl", "--timeout=20", "-t", vswitchdControl] + arguments, in: namespace)
    }

    /// The MACs `br-int` learned, with the OpenFlow port number of each (`ovs-appctl
    /// fdb/show br-int`: " port  VLAN  MAC                Age").
    func learnedMACs() throws -> [(port: String, mac: String)] {
        let text = try appctl(["fdb/show", "br-int"]).output
        return text.split(separator: "\n").dropFirst().compactMap { line in
            let fields = line.split(separator: " ")
            guard fields.count >= 3 else { return nil }
            return (String(fields[0]), String(fields[2]).lowercased())
        }
    }

    /// The OpenFlow port number of interface `name` on br-int.
    func openFlowPort(_ name: String) throws -> String {
        try vsctl(["get", "Interface", name, "ofport"]).output
            .trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// (Re)creates `gre0` on br-int towards `remote` with key `key` and `extraOptions`
    /// (`options:csum=true`, …), and tells OVS's tunnel neighbour cache `remoteMAC` so no
    /// first frame is lost to its ARP/ND resolution.
    func setTunnel(
        remote: String, remoteMAC: String, key: Int, type: String = "gre",
        extraOptions: [String] = []
    ) throws {
        try vsctl(["--if-exists", "del-port", "br-int", "gre0"])
        try vsctl(
            [
                "add-port", "br-int", "gre0", "--", "set", "interface", "gre0", "type=\(type)",
                "options:remote_ip=\(remote)", "options:key=\(key)",
            ] + extraOptions)
        try appctl(["tnl/neigh/set", "br-phy", remote, remoteMAC])
        // ovs-vswitchd reports a port it could not create in the Interface's error column.
        let error = try vsctl(["get", "Interface", "gre0", "error"]).output
            .trimmingCharacters(in: .whitespacesAndNewlines)
        guard error == "[]" else {
            throw LabError(description: "OVS refused gre0 (\(type) to \(remote)): \(error)")
        }
    }
}

extension Lab {
    /// Turns `site` (kind `.gateway`, nothing started in it) into an OVS userspace VTEP:
    /// moves its underlay addresses to br-phy, bridges its access veth on br-int, and adds
    /// `gre0` towards `remote` with `key`. `remoteMAC` is the remote VTEP's underlay MAC.
    func startOVS(
        at site: LabSite, remote: String, remoteMAC: String, key: Int,
        tunnelOptions: [String] = []
    ) throws -> LabOVS {
        guard site.kind == .gateway else {
            throw LabError(description: "site \(site.index) has a kernel VTEP, not a free slot")
        }
        let ns = site.namespace
        // Every address of the site is in one namespace: answer ARP only on the interface
        // that owns the address, or br-int's side would answer for the underlay.
        try execute(
            [
                "sysctl", "-qw", "net.ipv4.conf.all.arp_ignore=1",
                "net.ipv4.conf.default.arp_ignore=1",
            ], in: ns)
        let ovs = try startOVSDaemons(for: site, in: ns, name: "\(site.index)")

        // The underlay: its addresses move from the veth to br-phy's internal port, which
        // takes the veth's MAC so the underlay switch and the peers' caches stay right.
        let mac = try interfaceMAC(site.underlayInterface, in: ns)
        try execute(["ip", "addr", "flush", "dev", site.underlayInterface], in: ns)
        try ovs.vsctl([
            "add-br", "br-phy", "--", "set", "bridge", "br-phy", "datapath_type=netdev",
            "other-config:hwaddr=\"\(mac)\"", "--", "add-port", "br-phy", site.underlayInterface,
        ])
        try execute(["ip", "link", "set", "br-phy", "up"], in: ns)
        try execute(["ip", "addr", "add", "\(site.underlayIPv4)/24", "dev", "br-phy"], in: ns)
        try execute(
            ["ip", "addr", "add", "\(site.underlayIPv6)/64", "dev", "br-phy", "nodad"], in: ns)
        // The overlay: the host's veth is a port of br-int, which learns (action NORMAL).
        try ovs.vsctl([
            "add-br", "br-int", "--", "set", "bridge", "br-int", "datapath_type=netdev", "--",
            "add-port", "br-int", site.accessInterface,
        ])
        try execute(["ip", "link", "set", "br-int", "up"], in: ns)
        // OVS 3.1's userspace datapath cannot tunnel what its host's TSO and GSO make: it drops
        // a super-frame read from br-int's port ("Dropped packet: Too big. GRO/TSO enabled?"),
        // and with other_config:userspace-tso-enable=true it drops it at gre0 instead
        // ("Tunneling packets with HW offload flags is not supported"; Documentation/topics/
        // userspace-tso.rst: no TSO over GRE). So the host behind OVS segments in software:
        // TSO and GSO off on its veth, a limit of this peer, not of vtepd, whose site keeps
        // every offload. Its transmit checksum offload stays on (OVS then sends the
        // unfinished checksums it read into the tunnel, which vtepd finishes).
        try execute(
            ["ethtool", "-K", site.hostInterface, "tso", "off", "gso", "off"],
            in: site.hostNamespace)
        try ovs.setTunnel(
            remote: remote, remoteMAC: remoteMAC, key: key, extraOptions: tunnelOptions)
        return ovs
    }

    /// Puts `site`'s host on VLAN `vlan` of an 802.1Q trunk (this kernel has no VLAN devices,
    /// no bridge VLAN filtering and no tc vlan action): an OVS userspace bridge in the host's
    /// namespace takes the host's veth as its trunk and gives the host's address (and MAC) to
    /// an internal port tagged `vlan`. With other_config:userspace-tso-enable=true, OVS reads
    /// that port (a tap) with virtio-net headers and offers TSO and checksum offload to the
    /// host's stack, so the host still sends TSO super-frames with partial checksums, now
    /// tagged on the trunk, and takes super-frames back (OVS 3.1 keeps TSO across VLAN push
    /// and pop; Documentation/topics/userspace-tso.rst). Returns the OVS and the internal
    /// port, the host's interface from now on.
    func startVLANHost(_ site: LabSite, vlan: Int, mtu: Int) throws -> (LabOVS, String) {
        let ns = site.hostNamespace
        let ovs = try startOVSDaemons(
            for: site, in: ns, name: "h\(site.index)",
            otherConfig: ["userspace-tso-enable": "true"])
        let port = "vlan\(vlan)"
        try execute(["ip", "addr", "flush", "dev", site.hostInterface], in: ns)
        try ovs.vsctl([
            "add-br", "br-vlan", "--", "set", "bridge", "br-vlan", "datapath_type=netdev", "--",
            "add-port", "br-vlan", site.hostInterface, "--", "add-port", "br-vlan", port,
            "tag=\(vlan)", "--", "set", "interface", port, "type=internal",
            "mac=\"\(site.hostMAC)\"",
        ])
        try execute(["ip", "link", "set", port, "mtu", "\(mtu)", "up"], in: ns)
        try execute(["ip", "addr", "add", "\(site.hostIPv4)/24", "dev", port], in: ns)
        return (ovs, port)
    }

    /// ovsdb-server and ovs-vswitchd in `namespace`, with their own database, sockets and logs
    /// in a directory of the lab, `otherConfig` set in Open_vSwitch before ovs-vswitchd reads
    /// it (some keys, such as userspace-tso-enable, are read only at its start).
    func startOVSDaemons(
        for site: LabSite, in namespace: String, name: String, otherConfig: [String: String] = [:]
    ) throws -> LabOVS {
        for tool in ["ovsdb-server", "ovs-vswitchd", "ovs-vsctl", "ovs-appctl", "ovsdb-tool"]
        where Lab.executable(tool) == nil {
            throw LabError(
                description: "\(tool) is not installed: the OVS tests need Debian's"
                    + " openvswitch-switch (appliance/install-deps.sh)")
        }
        let schema = "/usr/share/openvswitch/vswitch.ovsschema"
        guard FileManager.default.fileExists(atPath: schema) else {
            throw LabError(description: "\(schema) is missing (Debian openvswitch-common)")
        }
        let directory = file("ovs-\(name)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let path = { (name: String) in directory.appendingPathComponent(name).path }
        // OVS daemons put what is not given on the command line under these directories.
        let environment = ["OVS_RUNDIR", "OVS_LOGDIR", "OVS_DBDIR", "OVS_SYSCONFDIR"].map {
            "\($0)=\(directory.path)"
        }
        try execute(["ovsdb-tool", "create", path("conf.db"), schema])
        let server = try start(
            "ovsdb-server-\(name)",
            ["env"] + environment + [
                "ovsdb-server", path("conf.db"), "--remote=punix:" + path("db.sock"),
                "--unixctl=" + path("ovsdb-server.ctl"), "--pidfile=" + path("ovsdb-server.pid"),
                "--log-file=" + path("ovsdb-server.log"), "-vconsole:off", "-vsyslog:off",
            ], in: namespace)
        try waitForSocket(path("db.sock"), of: server)
        let vsctl = ["ovs-vsctl", "--timeout=20", "--db=unix:" + path("db.sock"), "--no-wait"]
        try execute(vsctl + ["init"], in: namespace)
        for (key, value) in otherConfig.sorted(by: { $0.key < $1.key }) {
            try execute(
                vsctl + ["set", "Open_vSwitch", ".", "other_config:\(key)=\(value)"],
                in: namespace)
        }
        let vswitchd = try start(
            "ovs-vswitchd-\(name)",
            ["env"] + environment + [
                "ovs-vswitchd", "unix:" + path("db.sock"), "--unixctl=" + path("vswitchd.ctl"),
                "--pidfile=" + path("vswitchd.pid"), "--log-file=" + path("vswitchd.log"),
                "-vconsole:off", "-vsyslog:off",
            ], in: namespace)
        try waitForSocket(path("vswitchd.ctl"), of: vswitchd)
        return LabOVS(
            lab: self, site: site, namespace: namespace, directory: directory,
            ovsdbServer: server, vswitchd: vswitchd)
    }

    /// The MAC address of `interface` in `namespace`.
    func interfaceMAC(_ interface: String, in namespace: String) throws -> String {
        let text = try execute(["cat", "/sys/class/net/\(interface)/address"], in: namespace)
            .output.trimmingCharacters(in: .whitespacesAndNewlines)
        guard text.split(separator: ":").count == 6 else {
            throw LabError(description: "cannot read the MAC of \(interface): '\(text)'")
        }
        return text
    }

    func waitForSocket(_ path: String, of process: LabProcess) throws {
        try waitUntil("\(process.name) to create \(path)", lastSeen: process.tail()) {
            if FileManager.default.fileExists(atPath: path) { return true }
            try process.requireRunning()
            return false
        }
    }
}
