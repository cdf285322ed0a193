import Foundation
import TestSupport
import Testing

/// vtepd's lifecycle as an operator meets it: what a lost database or a dead child does to
/// the log and to `vtepd show configuration`'s problems, and an orderly stop on SIGTERM.
@Suite(
    "vtepd lifecycle: failures reach the log and problems; SIGTERM stops it in order", .serialized)
struct VTEPDLifecycleTests {
    /// The problems `vtepd show configuration --json` lists.
    static func problems(_ vtepd: LabVTEPD) throws -> [String] {
        try vtepd.configuration()["problems"] as? [String] ?? []
    }

    /// A signal mask line (`SigIgn`, `SigBlk`, `SigCgt`) of /proc/PID/status.
    static func signalMask(_ name: String, of pid: pid_t) throws -> UInt64 {
        let status = try String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)
        guard
            let line = status.split(separator: "\n").first(where: { $0.hasPrefix(name + ":") }),
            let mask = UInt64(
                line.dropFirst(name.count + 1).trimmingCharacters(in: .whitespaces), radix: 16)
        else { throw LabError(description: "no \(name) in /proc/\(pid)/status") }
        return mask
    }

    /// The PID in an ovsdb-server pidfile.
    static func pid(in pidfile: URL) throws -> pid_t {
        let text = try String(contentsOf: pidfile, encoding: .utf8)
        guard let pid = pid_t(text.trimmingCharacters(in: .whitespacesAndNewlines)), pid > 1 else {
            throw LabError(description: "\(pidfile.path) holds no PID: \(text)")
        }
        return pid
    }

    /// The data-plane worker thread of `pid` (named vtepd-datapath): its thread ID, scheduling
    /// policy and real-time priority from /proc/PID/task/TID/stat (fields 41 and 40).
    static func worker(of pid: pid_t) throws -> (tid: Int, policy: Int, priority: Int) {
        let tasks = try FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/task")
        let named = tasks.filter {
            (try? String(contentsOfFile: "/proc/\(pid)/task/\($0)/comm", encoding: .utf8))
                == "vtepd-datapath\n"
        }
        guard named.count == 1, let tid = Int(named[0]) else {
            throw LabError(description: "\(named.count) threads of \(pid) named vtepd-datapath")
        }
        let stat = try String(contentsOfFile: "/proc/\(pid)/task/\(tid)/stat", encoding: .utf8)
        // After the command name's closing parenthesis, fields start at 3 (state).
        guard let close = stat.lastIndex(of: ")") else {
            throw LabError(description: "unreadable stat: \(stat)")
        }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        guard fields.count > 38, let priority = Int(fields[37]), let policy = Int(fields[38])
        else { throw LabError(description: "unreadable stat: \(stat)") }
        return (tid, policy, priority)
    }

    @Test(
        "the data-plane worker: named vtepd-datapath, normal scheduler by default, SCHED_FIFO at datapath-priority N, the policy vtepd was started with kept at 0, said in the log"
    )
    func dataPlaneWorkerScheduling() async throws {
        try await Lab.runOnOwnThread { lab in
            let topology = try lab.topology([.gateway])
            let site = topology.sites[0]
            // (launcher, arguments, policy and priority expected, the log line that says so)
            let cases: [([String], [String], Int32, Int, String)] = [
                ([], [], SCHED_OTHER, 0, "runs under the normal scheduler (datapath-priority 0)"),
                (
                    [], ["--datapath-priority", "1"], SCHED_FIFO, 1,
                    "runs at real-time priority 1 (SCHED_FIFO)"
                ),
                ([], ["--datapath-priority", "7"], SCHED_FIFO, 7, "runs at real-time priority 7"),
                // Started under SCHED_BATCH (as a unit's CPUSchedulingPolicy=batch would), the
                // worker at 0 is left under it, not moved to SCHED_OTHER.
                (
                    ["chrt", "--batch", "0"], [], 3 /* SCHED_BATCH */, 0,
                    "keeps the scheduling policy vtepd was started with, SCHED_BATCH"
                ),
            ]
            for (i, (launcher, arguments, policy, priority, said)) in cases.enumerated() {
                let vtepd = try lab.startVTEPD(
                    at: site, vni: 5001, extraArguments: arguments,
                    stateRoot: lab.file("vtepd-priority-\(i)"), launcher: launcher)
                try vtepd.process.waitForLog(
                    "notice vtepd.dataplane: the data-plane worker " + said)
                // Start-up's commands keep the worker busy; busy for more than its budget
                // (2 ms, easily reached on a loaded machine), it leaves the real-time class
                // until its next idle poll (RealtimeBudget), so the policy is read once idle.
                let pid = vtepd.process.pid
                let worker = try waitUntil(
                    "the worker under policy \(policy) at priority \(priority) (\(arguments))",
                    timeout: .seconds(20),
                    lastSeen: "policy and priority: \(try Self.worker(of: pid))"
                ) { () throws -> (tid: Int, policy: Int, priority: Int)? in
                    let worker = try Self.worker(of: pid)
                    return worker.policy == Int(policy) && worker.priority == priority
                        ? worker : nil
                }
                #expect(worker.policy == Int(policy), "\(arguments)")
                #expect(worker.priority == priority, "\(arguments)")
                // It forwards and answers the control socket either way.
                #expect(try vtepd.bindings().count == 1)
                #expect(vtepd.process.stop(signal: SIGTERM, timeout: .seconds(20)) == 0)
            }
        }
    }

    @Test(
        "overloaded (a full receive ring), the worker leaves the real-time scheduler, counts it, and takes it back when idle"
    )
    func anOverloadedWorkerYieldsItsRealtimePriority() async throws {
        try await Lab.runOnOwnThread { lab in
            let topology = try lab.topology([.gateway, .kernel(vni: 5001)])
            let (a, b) = (topology.sites[0], topology.sites[1])
            let port = 9000 + Int(getpid() % 500)
            let vtepd = try lab.startVTEPD(
                at: a, vni: 5001,
                extraArguments: [
                    "--metrics-listen", "127.0.0.1:\(port)", "--datapath-priority", "1",
                ])
            try lab.replicate(from: a, to: [b], vtepd: vtepd)
            func yields() throws -> Int {
                let text = try lab.execute(
                    [
                        "python3", "-c",
                        "import urllib.request; print(urllib.request.urlopen("
                            + "'http://127.0.0.1:\(port)/metrics', timeout=5).read().decode())",
                    ], in: a.namespace
                ).output
                guard
                    let line = text.split(separator: "\n").first(where: {
                        $0.hasPrefix("vtep_worker_realtime_yields_total ")
                    }), let value = Int(line.split(separator: " ")[1])
                else {
                    throw LabError(description: "no vtep_worker_realtime_yields_total in\n\(text)")
                }
                return value
            }
            try waitUntil("the metrics endpoint answers") { (try? yields()) != nil }
            // Not necessarily 0: starting (configurations applied back to back) may already
            // have kept it busy 2 ms on a loaded machine.
            let before = try yields()

            // vtepd stopped, its access port's ring (2,048 frames) filled with broadcasts, each
            // one to encapsulate toward site B; let go, the worker serves them back to back
            // for longer than its 2 ms budget without an idle moment.
            kill(vtepd.process.pid, SIGSTOP)
            defer { kill(vtepd.process.pid, SIGCONT) }
            try lab.sendBroadcastFrames(from: a, count: 2_040)
            kill(vtepd.process.pid, SIGCONT)
            try waitUntil("the worker to count a yield") { try yields() > before }
            // Idle again: back under SCHED_FIFO at its priority.
            try waitUntil("the worker back under SCHED_FIFO") {
                let worker = try Self.worker(of: vtepd.process.pid)
                return worker.policy == Int(SCHED_FIFO) && worker.priority == 1
            }
            let ping = try lab.ping(from: a.hostNamespace, to: b.hostIPv4, count: 2)
            #expect(ping.received == 2)
        }
    }

    @Test(
        "an external database killed and started again: problem and error, then cleared and notice")
    func databaseLostAndFoundAgain() async throws {
        try await Lab.runOnOwnThread { lab in
            let topology = try lab.topology([.gateway])
            let site = topology.sites[0]
            let stateRoot = lab.file("vtepd-external-db")
            try FileManager.default.createDirectory(
                at: stateRoot, withIntermediateDirectories: true)
            let database = stateRoot.appendingPathComponent("external.db").path
            let socket = stateRoot.appendingPathComponent("db.sock").path
            try lab.execute([
                "ovsdb-tool", "create", database, "/usr/share/openvswitch/vtep.ovsschema",
            ])
            let serverArguments = [
                "ovsdb-server", database, "--remote=punix:\(socket)", "--no-chdir",
                "--unixctl=\(stateRoot.appendingPathComponent("external.ctl").path)",
                "-vconsole:off",
            ]
            let first = try lab.start("ovsdb-external-1", serverArguments, in: site.namespace)
            let vtepd = try lab.startVTEPD(
                at: site, vni: 5001, extraArguments: ["--database", "unix:\(socket)"],
                stateRoot: stateRoot)
            try waitUntil("the bound switch in the configuration") {
                try vtepd.bindings().count == 1
            }
            #expect(try Self.problems(vtepd).filter { $0.contains("hardware_vtep database") } == [])

            // Killed by its PID: vtepd says so in its log and its problems, and forwards on.
            first.stop(signal: SIGKILL)
            try vtepd.process.waitForLog("error vtepd.database: lost the hardware_vtep database")
            try waitUntil("the database-lost problem") {
                try Self.problems(vtepd).contains {
                    $0.contains("the hardware_vtep database unix:\(socket) is unreachable since")
                }
            }
            #expect(try vtepd.bindings().count == 1, "the last configuration stays in force")
            // The local-MAC publisher cannot write meanwhile: its failure is shown too.
            try vtepd.process.waitForLog(
                "error vtepd.switch: publishing local MACs failed, retrying")
            try waitUntil("the publisher's problem") {
                try Self.problems(vtepd).contains {
                    $0.hasPrefix("local MACs are not published to Ucast_Macs_Local")
                }
            }

            // Started again on the same file: found again, the problem clears.
            _ = try lab.start("ovsdb-external-2", serverArguments, in: site.namespace)
            try vtepd.process.waitForLog(
                "notice vtepd.database: found the hardware_vtep database again",
                timeout: .seconds(30))
            try vtepd.process.waitForLog("notice vtepd.switch: publishing local MACs again")
            // A minute: under a full parallel test run the first rounds after the reconnect
            // (the publisher's check of its rows, the status writers) can take a while.
            try waitUntil(
                "the database and publisher problems to clear", timeout: .seconds(60),
                lastSeen: (try? Self.problems(vtepd))?.joined(separator: "; ") ?? "?"
            ) {
                !(try Self.problems(vtepd)).contains {
                    $0.contains("hardware_vtep database") || $0.contains("local MACs")
                }
            }
            try vtepd.process.requireRunning()
        }
    }

    @Test("vtepd's own ovsdb-server killed: restarted, an error in the log, a problem that says so")
    func supervisedDatabaseServerRestarted() async throws {
        try await Lab.runOnOwnThread { lab in
            let topology = try lab.topology([.gateway])
            let vtepd = try lab.startVTEPD(at: topology.sites[0], vni: 5001)
            let pidfile = vtepd.stateRoot.appendingPathComponent("ovsdb-server.pid")
            let first = try Self.pid(in: pidfile)
            #expect(try Self.problems(vtepd).filter { $0.contains("ovsdb-server") } == [])

            kill(first, SIGKILL)
            try vtepd.process.waitForLog(
                "error vtepd.database: ovsdb-server (PID \(first)) killed by signal 9")
            try vtepd.process.waitForLog("notice vtepd.database: ovsdb-server restarted")
            try waitUntil("the restart among the problems") {
                try Self.problems(vtepd).contains {
                    $0.contains("ovsdb-server died 1 time(s) and was restarted")
                        && $0.contains("PID \(first)")
                }
            }
            // The new server serves the same database, and vtepd follows it again.
            try vtepd.process.waitForLog(
                "notice vtepd.database: found the hardware_vtep database again",
                timeout: .seconds(30))
            let second = try Self.pid(in: pidfile)
            #expect(second != first)
            try vtepd.control(["list-ls"])
        }
    }

    @Test(
        "SIGTERM under systemd: exit 0, stops logged in order with journald priorities, sockets and children gone"
    )
    func sigtermStopsInOrder() async throws {
        try await Lab.runOnOwnThread { lab in
            let topology = try lab.topology([.gateway])
            // As systemd does: JOURNAL_STREAM names the device and inode of vtepd's stderr.
            let journal = lab.file("vtepd-journal.log")
            try Data().write(to: journal)
            var status = stat()
            try #require(stat(journal.path, &status) == 0)
            let vtepd = try lab.startVTEPD(
                at: topology.sites[0], vni: 5001,
                environment: ["JOURNAL_STREAM=\(status.st_dev):\(status.st_ino)"], log: journal)
            let ovsdb = try Self.pid(in: vtepd.stateRoot.appendingPathComponent("ovsdb-server.pid"))
            try waitUntil("the bound switch in the configuration") {
                try vtepd.bindings().count == 1
            }
            #expect(processExists(ovsdb))

            #expect(vtepd.process.stop(signal: SIGTERM, timeout: .seconds(20)) == 0)
            let log = try String(contentsOf: vtepd.process.log, encoding: .utf8)
            let order = [
                "<5>vtepd: started",
                "<6>vtepd.control: control socket closed and removed",
                "<6>vtepd.switch: hardware_vtep client stopped",
                "<6>vtepd.dataplane: data plane stopped",
                "<6>vtepd.dhcp: DHCP clients and hook socket stopped",
                "<6>vtepd.database: ovsdb-server stopped",
                "<5>vtepd: stopped",
            ]
            var positions: [String.Index] = []
            for line in order {
                let found = try #require(log.range(of: line), "no \"\(line)\" in:\n\(log)")
                positions.append(found.lowerBound)
            }
            #expect(positions == positions.sorted(), "out of order:\n\(log)")
            // An orderly stop logs no error (priority 3) or worse.
            #expect(!log.contains(/<[0-3]>/), "\(log)")
            // Every line carries a journald priority.
            for line in log.split(separator: "\n") {
                #expect(line.wholeMatch(of: /<[0-7]>vtepd[.a-z]*: .*/) != nil, "\(line)")
            }
            for socket in ["vtepd.ctl", "db.sock", "dhcp-hook.sock", "ovsdb-server.ctl"] {
                let path = vtepd.stateRoot.appendingPathComponent(socket).path
                #expect(!FileManager.default.fileExists(atPath: path), "\(path) left behind")
            }
            #expect(!processExists(ovsdb), "ovsdb-server (PID \(ovsdb)) outlived vtepd")
        }
    }

    @Test(
        "SIGTERM while vtepd starts (its ovsdb-server child already running): an orderly stop, exit 0, the child gone"
    )
    func sigtermDuringStart() async throws {
        try await Lab.runOnOwnThread { lab in
            let topology = try lab.topology([.gateway])
            let site = topology.sites[0]
            let stateRoot = lab.file("vtepd-early-term")
            try FileManager.default.createDirectory(
                at: stateRoot, withIntermediateDirectories: true)
            let process = try lab.start(
                "vtepd-early-term",
                [
                    try LabVTEPD.executable().path, "run", "--state-root", stateRoot.path,
                    "--physical-switch", lab.prefix + "pse", "--tunnel-ip", site.underlayIPv4,
                    "--underlay", site.underlayInterface, "--port", site.accessInterface,
                ], in: site.namespace)
            // The signal goes the moment vtepd's ovsdb-server child exists, before vtepd has its
            // certificate, worker and control socket and says "started" (~0.2 s later here).
            let taskDirectory = "/proc/\(process.pid)/task"
            // Looked for every millisecond (waitUntil slows to 100 ms: past the window).
            let deadline = ContinuousClock.now + .seconds(30)
            var child: pid_t?
            while child == nil {
                try process.requireRunning()
                guard ContinuousClock.now < deadline else {
                    throw LabError(description: "vtepd started no ovsdb-server in 30 s")
                }
                // Each thread's children are listed under it: whichever thread spawned it.
                let tasks =
                    (try? FileManager.default.contentsOfDirectory(atPath: taskDirectory)) ?? []
                child = tasks.lazy.flatMap {
                    let file = "\(taskDirectory)/\($0)/children"
                    return ((try? String(contentsOfFile: file, encoding: .utf8)) ?? "")
                        .split(separator: " ").compactMap { pid_t($0) }
                }.first {
                    (try? String(contentsOfFile: "/proc/\($0)/comm", encoding: .utf8))
                        == "ovsdb-server\n"
                }
                if child == nil { Thread.sleep(forTimeInterval: 0.001) }
            }
            let ovsdb = try #require(child)
            kill(process.pid, SIGTERM)
            #expect(process.waitForExit(timeout: .seconds(30)))
            let log = try String(contentsOf: process.log, encoding: .utf8)
            #expect(process.status == 0, "\(log)")
            #expect(log.contains("notice vtepd: SIGTERM: stopping"), "\(log)")
            #expect(log.contains("info vtepd.database: ovsdb-server stopped"), "\(log)")
            #expect(log.contains("notice vtepd: stopped"), "\(log)")
            // An orderly stop: no errors on the way (warnings about the lab's setup are fine).
            #expect(!log.contains(#/Z (error|critical) /#), "\(log)")
            // Whatever vtepd had reached of its start when the signal came, it said so in order.
            if let started = log.range(of: "notice vtepd: started"),
                let stopping = log.range(of: "notice vtepd: SIGTERM: stopping")
            {
                #expect(started.lowerBound < stopping.lowerBound, "\(log)")
            }
            #expect(!processExists(ovsdb), "ovsdb-server (PID \(ovsdb)) outlived vtepd:\n\(log)")
        }
    }

    @Test("a killed udhcpc: restarted, an error in the log, a problem; its output in vtepd's log")
    func dhcpClientRestarted() async throws {
        try await Lab.runOnOwnThread { lab in
            let site = try ShellSite(lab)
            defer { VTEPSHNetworkServiceTests.stopLeftoverClients(site) }
            let server = try VTEPSHNetworkServiceTests.DHCPServer(lab, site: site)
            let lan = server.lan
            let vtepd = try site.startVTEPD()
            _ = try server.leaseOnLAN(lab, site)
            let pidfile = URL(fileURLWithPath: site.state + "/udhcpc-\(lan).pid")
            let first = try Self.pid(in: pidfile)
            // udhcpc's own words come through vtepd's log, one message per line.
            try vtepd.waitForLog("info vtepd.dhcp: udhcpc: started")

            kill(first, SIGKILL)
            try vtepd.waitForLog(
                "error vtepd.dhcp: the DHCP client killed by signal 9 (Killed); restarting it")
            func problems() throws -> [String] {
                let text = try lab.execute([
                    try LabVTEPD.executable().path, "show", "configuration", "--json",
                    "--control", site.controlSocket,
                ]).output
                let report = try JSONSerialization.jsonObject(with: Data(text.utf8))
                return (report as? [String: Any])?["problems"] as? [String] ?? []
            }
            try waitUntil("the restart among the problems") {
                try problems().contains {
                    $0.hasPrefix("the DHCP client on \(lan) died 1 time(s) and was restarted")
                        && $0.contains("killed by signal 9")
                }
            }
            try waitUntil("a new udhcpc", timeout: .seconds(20)) {
                (try? Self.pid(in: pidfile)).map { $0 != first } ?? false
            }
            // vtepd's ServiceGroup catches SIGTERM and SIGINT; a child it starts afterwards
            // starts with neither ignored nor blocked, or stopping it would not work.
            let term: UInt64 = 1 << (UInt64(SIGTERM) - 1) | 1 << (UInt64(SIGINT) - 1)
            #expect(try Self.signalMask("SigCgt", of: vtepd.pid) & term == term)
            let second = try Self.pid(in: pidfile)
            #expect(try Self.signalMask("SigIgn", of: second) & term == 0)
            #expect(try Self.signalMask("SigBlk", of: second) & term == 0)
            #expect(vtepd.stop() == 0)
        }
    }

    @Test(
        "a start that fails late (the control socket path is a file): exit 1, ovsdb-server stopped")
    func failedStartStopsWhatItStarted() async throws {
        try await Lab.runOnOwnThread { lab in
            let topology = try lab.topology([.gateway])
            let site = topology.sites[0]
            let stateRoot = lab.file("vtepd-failed-start")
            try FileManager.default.createDirectory(
                at: stateRoot, withIntermediateDirectories: true)
            let taken = stateRoot.appendingPathComponent("taken")
            try Data("not a socket\n".utf8).write(to: taken)
            let process = try lab.start(
                "vtepd-failed-start",
                [
                    try LabVTEPD.executable().path, "run", "--state-root", stateRoot.path,
                    "--physical-switch", lab.prefix + "psf", "--tunnel-ip", site.underlayIPv4,
                    "--underlay", site.underlayInterface, "--port", site.accessInterface,
                    "--control", taken.path,
                ], in: site.namespace)
            #expect(process.waitForExit(timeout: .seconds(30)))
            #expect(process.status == 1)
            let log = try String(contentsOf: process.log, encoding: .utf8)
            #expect(log.contains("critical vtepd: cannot start: "), "\(log)")
            // The ovsdb-server it had started is stopped (by PID, as its log line says).
            let stopped = try #require(
                log.firstMatch(of: /info vtepd\.database: ovsdb-server stopped pid=(\d+)/),
                "\(log)")
            let pid = try #require(pid_t(stopped.1))
            #expect(!processExists(pid))
            #expect(try String(contentsOf: taken, encoding: .utf8) == "not a socket\n")
        }
    }

    @Test(
        "the underlay down: send errors reach the log (at --log-level warning) with their errno, and the problems"
    )
    func dataPlaneIOErrorsAreReported() async throws {
        try await Lab.runOnOwnThread { lab in
            let topology = try lab.topology([.gateway, .kernel(vni: 5001)])
            let (a, b) = (topology.sites[0], topology.sites[1])
            // At --log-level warning, only warnings and worse reach the log.
            let vtepd = try lab.startVTEPD(
                at: a, vni: 5001, extraArguments: ["--log-level", "warning"])
            try lab.replicate(from: a, to: [b], vtepd: vtepd)
            try lab.warmUnderlay(topology)
            #expect(try Self.problems(vtepd).filter { $0.contains("I/O") } == [])

            // Each broadcast from host A is a copy to B that cannot leave.
            try lab.execute(["ip", "link", "set", a.underlayInterface, "down"], in: a.namespace)
            try waitUntil("a data-plane I/O error in vtepd's log") {
                try lab.sendBroadcastPing(from: a.hostNamespace, to: "10.0.0.255")
                return (try? String(contentsOf: vtepd.process.log, encoding: .utf8))?.contains(
                    "error vtepd.dataplane: data-plane I/O error: send on") == true
            }
            let log = try String(contentsOf: vtepd.process.log, encoding: .utf8)
            #expect(
                log.contains(
                    /data-plane I\/O error: send on [a-z ]+: .+ \(errno \d+\) failures=\d+/))
            #expect(try Self.problems(vtepd).contains { $0.hasPrefix("data-plane I/O errors: ") })
            #expect(try vtepd.dropCount("io_error") > 0)
            #expect(!log.contains(/Z (info|notice|debug) vtepd/), "\(log)")
            try vtepd.process.requireRunning()
        }
    }

    @Test(
        "a VTEP routed via another interface: its next hop unresolved, why, in the log and problems"
    )
    func unresolvedNextHopIsReported() async throws {
        try await Lab.runOnOwnThread { lab in
            let topology = try lab.topology([.gateway])
            let site = topology.sites[0]
            let vtepd = try lab.startVTEPD(at: site, vni: 5001)
            // 203.0.113.0/24 (RFC 5737) lies behind a veth of its own, not the underlay.
            let other = lab.prefix + "o1"
            try lab.execute(
                ["ip", "link", "add", other, "type", "veth", "peer", "name", lab.prefix + "o2"],
                in: site.namespace)
            try lab.execute(
                ["ip", "addr", "add", "203.0.113.1/24", "dev", other], in: site.namespace)
            for name in [other, lab.prefix + "o2"] {
                try lab.execute(["ip", "link", "set", name, "up"], in: site.namespace)
            }
            try lab.replicate(from: site, to: [], vtepd: vtepd)
            try vtepd.control([
                "add-mcast-remote", vtepd.logicalSwitch, "unknown-dst", "203.0.113.9",
            ])

            try vtepd.process.waitForLog(
                "warning vtepd.dataplane: next hop of VTEP 203.0.113.9 unresolved: routed via \(other),"
                    + " not the underlay interface")
            try waitUntil("the unresolved next hop among the problems") {
                try Self.problems(vtepd).contains(
                    "next hop of VTEP 203.0.113.9 (vxlan) unresolved: routed via \(other), not the"
                        + " underlay interface; its frames take the kernel's path")
            }
            // The VTEP leaves the flood list: so does the problem.
            try vtepd.control(["clear-remote-macs", vtepd.logicalSwitch])
            try waitUntil("the problem to clear") {
                !(try Self.problems(vtepd)).contains { $0.contains("203.0.113.9") }
            }
            try vtepd.process.requireRunning()
        }
    }
}
