import ControlAPI
import DataPlane
import Foundation
import Logging
import ProcessSpawning
import Synchronization

/// `debug capture`: tcpdump writes the frames of one interface to `STATE/captures/`, where an
/// admin with only vtepsh copies them off with scp. One capture at a time, bounded by frames
/// (each cut to 2,048 bytes, so a file stays under about 200 MB) and seconds; the newest
/// `keep` files are kept. While it runs, vtepd sends on that interface through the qdisc, so
/// the capture sees what vtepd sends as well as what it receives.
public final class PacketCaptures: Sendable {
    public let directory: String
    let tcpdump: String
    static let keep = 10
    private let running = Mutex<String?>(nil)
    /// Why the last capture failed, for `show captures`; nil after one that worked.
    private let lastFailure = Mutex<String?>(nil)
    private let logger = Logger(label: "vtepd.capture")

    public init(stateRoot: String, tcpdump: String = "/usr/bin/tcpdump") {
        directory = stateRoot + "/captures"
        self.tcpdump = tcpdump
    }

    /// Starts a capture on access port `port` (nil: the underlay) and answers at once; the
    /// capture ends by itself.
    func start(_ command: DebugCapture, dataPlane: DataPlane) async throws(ControlFailure)
        -> [String]
    {
        guard FileManager.default.isExecutableFile(atPath: tcpdump) else {
            throw ControlFailure("\(tcpdump) is not installed")
        }
        let port = command.port?.text
        let interface: String
        if let port {
            interface = port
        } else {
            interface = await dataPlane.inspect { $0.underlayName }
        }
        let stamp = Self.stamp(Date())
        // Time first, so names sort by time whatever the interface.
        let file = "\(directory)/\(stamp)-\(interface).pcap"
        let claimed = running.withLock { current -> Bool in
            guard current == nil else { return false }
            current = file
            return true
        }
        guard claimed else {
            throw ControlFailure(
                "a capture is already running (\(running.withLock { $0 } ?? "")); wait for it")
        }
        if let problem = await dataPlane.inspect({ $0.setTapped(port: port, true) }) {
            running.withLock { $0 = nil }
            throw ControlFailure(problem)
        }
        do {
            try FileManager.default.createDirectory(
                atPath: directory, withIntermediateDirectories: true,
                attributes: [.posixPermissions: 0o750])
            prune()
        } catch {
            _ = await dataPlane.inspect { $0.setTapped(port: port, false) }
            running.withLock { $0 = nil }
            throw ControlFailure("cannot make \(directory): \(error.localizedDescription)")
        }
        let arguments = [
            "-i", interface, "-w", file, "-c", String(command.count), "-s", "2048", "-U", "-n",
            "-Z", "root", "-G", String(command.seconds), "-W", "1",
        ]
        let tcpdump = self.tcpdump
        let seconds = command.seconds
        // tcpdump blocks for up to `seconds`: on a thread of its own, not the async pool.
        let finished: @Sendable (String?) -> Void = { [self] failure in
            Task { _ = await dataPlane.inspect { $0.setTapped(port: port, false) } }
            // Readable by the admins' group, who copy it off.
            chmod(file, 0o640)
            if let group = UnixSocketFile.groupID(named: ControlServer.defaultGroup) {
                chown(file, 0, group)
            }
            lastFailure.withLock { $0 = failure }
            if let failure { logger.warning("capture on \(interface) failed: \(failure)") }
            running.withLock { $0 = nil }
        }
        let thread = Thread {
            do {
                // tcpdump ends by itself after `seconds` (-G, -W 1); the timeout is a backstop.
                try HostCommand.run(tcpdump, arguments, timeout: .seconds(seconds + 10))
                finished(nil)
            } catch {
                finished("\(error)")
            }
        }
        thread.name = "vtepd-capture"
        thread.start()
        return [
            "capturing on \(interface) into \(file):"
                + " at most \(command.count) frames or \(seconds) seconds",
            "copy it off with: scp admin@<this appliance>:\(file) .",
        ]
    }

    /// The files, newest first, with their size and time; the running one marked.
    func list() -> [String] {
        let current = running.withLock { $0 }
        let files = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        let rows = files.filter { $0.hasSuffix(".pcap") }.sorted(by: >).map { name -> String in
            let path = directory + "/" + name
            let attributes = try? FileManager.default.attributesOfItem(atPath: path)
            let size = (attributes?[.size] as? NSNumber)?.intValue ?? 0
            return "\(path)  \(size) bytes" + (path == current ? "  (capturing)" : "")
        }
        let failure = lastFailure.withLock { $0 }.map { ["the last capture failed: \($0)"] } ?? []
        return (rows.isEmpty ? ["no captures in \(directory)"] : rows) + failure
    }

    /// Removes the oldest files beyond `keep - 1`, room for the next.
    private func prune() {
        let files =
            ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? [])
            .filter { $0.hasSuffix(".pcap") }.sorted()
        for name in files.dropLast(Self.keep - 1) {
            try? FileManager.default.removeItem(atPath: directory + "/" + name)
        }
    }

    /// `20261205-103000`, UTC: file names sort by time.
    static func stamp(_ date: Date) -> String {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "UTC")!
        let c = calendar.dateComponents([.year, .month, .day, .hour, .minute, .second], from: date)
        func two(_ value: Int?) -> String { String(format: "%02d", value ?? 0) }
        return
            "\(c.year ?? 0)\(two(c.month))\(two(c.day))-\(two(c.hour))\(two(c.minute))\(two(c.second))"
    }
}
