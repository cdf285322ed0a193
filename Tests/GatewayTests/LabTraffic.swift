import Foundation
import TestSupport

/// What `ping` reported.
struct LabPingResult: Sendable, Equatable {
    let transmitted: Int
    let received: Int
}

/// One entry of `bridge fdb show dev DEVICE`: a MAC and, on a vxlan device, the remote VTEP
/// it was learned from or configured with.
struct LabFDBEntry: Sendable, Equatable {
    let mac: String
    let destination: String?
    let permanent: Bool
}

extension Lab {
    /// Sends exactly `count` echo requests to `address` from `namespace`, 0.2 s apart (root
    /// may go below 1 s), waiting up to `reply` for the last answer. Throws only when ping's
    /// summary cannot be read; zero replies is a result, for the test to judge.
    func ping(
        from namespace: String, to address: String, count: Int, broadcast: Bool = false,
        reply: Duration = .seconds(2)
    ) throws -> LabPingResult {
        // -W (wait for each reply), not -w: with -w, ping keeps sending until `count`
        // replies arrive, and a broadcast or a lossy path would get more than `count` requests.
        var arguments = [
            "ping", "-n", "-q", "-c", "\(count)", "-i", "0.2", "-W", "\(reply.components.seconds)",
        ]
        if broadcast { arguments.append("-b") }
        arguments.append(address)
        let result = try attempt(
            arguments, in: namespace, timeout: reply + .seconds(count + 5))
        // "3 packets transmitted, 3 received, 0% packet loss, time 402ms"
        guard
            let line = result.output.split(separator: "\n").first(where: {
                $0.contains("packets transmitted")
            })
        else {
            throw LabError(
                description: "ping \(address) from \(namespace) printed no summary: "
                    + result.errors + result.output)
        }
        let numbers = line.split(whereSeparator: { $0 == " " || $0 == "," }).compactMap { Int($0) }
        guard numbers.count >= 2 else {
            throw LabError(description: "cannot read ping summary '\(line)'")
        }
        return LabPingResult(transmitted: numbers[0], received: numbers[1])
    }

    /// Sends one ICMP echo request to the IPv4 broadcast address `address` from `namespace`:
    /// exactly one frame to ff:ff:ff:ff:ff:ff, which hosts do not answer
    /// (icmp_echo_ignore_broadcasts), so captures can count it exactly.
    func sendBroadcastPing(from namespace: String, to address: String) throws {
        let result = try ping(
            from: namespace, to: address, count: 1, broadcast: true, reply: .seconds(1))
        guard result.transmitted == 1 else {
            throw LabError(
                description: "broadcast ping from \(namespace) sent \(result.transmitted)")
        }
    }

    /// `count` broadcast frames (ethertype 0x88b5, 60 bytes) from `site`'s host, as fast as a
    /// packet socket sends them.
    func sendBroadcastFrames(from site: LabSite, count: Int) throws {
        let storm = """
            import socket, sys
            s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
            s.bind((sys.argv[1], 0))
            frame = bytes.fromhex("ffffffffffff" + sys.argv[2].replace(":", "") + "88b5") + bytes(46)
            for _ in range(int(sys.argv[3])):
                s.send(frame)
            """
        try execute(
            ["python3", "-c", storm, site.hostInterface, site.hostMAC, "\(count)"],
            in: site.hostNamespace)
    }

    /// `bridge -j fdb show dev DEVICE` in `namespace`, parsed.
    func forwardingDatabase(in namespace: String, device: String = "vxlan0") throws
        -> [LabFDBEntry]
    {
        let result = try execute(["bridge", "-j", "fdb", "show", "dev", device], in: namespace)
        let data = Data(result.output.utf8)
        guard let entries = try JSONSerialization.jsonObject(with: data) as? [[String: Any]] else {
            throw LabError(description: "bridge -j fdb printed no JSON array: \(result.output)")
        }
        return try entries.map { entry in
            guard let mac = entry["mac"] as? String else {
                throw LabError(description: "fdb entry without a MAC: \(entry)")
            }
            return LabFDBEntry(
                mac: mac.lowercased(), destination: entry["dst"] as? String,
                permanent: (entry["state"] as? String) == "permanent")
        }
    }

    /// Sends `size` bytes of seeded pseudo-random data over TCP from `client` to
    /// `serverAddress`:`port`, received by `nc -l` in `serverNamespace`, and checks the
    /// received bytes against the sent ones byte for byte. Throws naming the first differing
    /// offset, or the lengths, when they differ. The server listens on `listenAddress`
    /// (default: `serverAddress`; another when the client reaches it through NAT).
    func transferTCP(
        from client: String, to serverNamespace: String, address serverAddress: String,
        listenAddress: String? = nil, port: Int = 5201, size: Int = 4 << 20,
        seed: UInt64 = 0x5EED_7E57
    ) throws {
        let sent = file("tcp-sent.bin")
        let received = file("tcp-received.bin")
        var generator = SplitMix64(seed: seed)
        var bytes = [UInt8](repeating: 0, count: size)
        for i in stride(from: 0, to: size, by: 8) {
            var word = generator.next()
            for j in i..<min(i + 8, size) {
                bytes[j] = UInt8(truncatingIfNeeded: word)
                word >>= 8
            }
        }
        try Data(bytes).write(to: sent)
        let server = try start(
            "nc-server", ["nc", "-n", "-l", listenAddress ?? serverAddress, "\(port)"],
            in: serverNamespace,
            output: received)
        defer { server.stop() }
        try waitForListener(port: port, in: serverNamespace, process: server)
        try execute(
            ["nc", "-n", "-N", "-w", "20", serverAddress, "\(port)"], in: client, input: sent,
            timeout: .seconds(60))
        guard server.waitForExit(timeout: .seconds(20)) else {
            throw LabError(
                description: "nc -l in \(serverNamespace) did not finish after the client")
        }
        let got = try Data(contentsOf: received)
        guard got.count == size else {
            throw LabError(description: "TCP transfer: sent \(size) bytes, received \(got.count)")
        }
        if let offset = zip(got, bytes).enumerated().first(where: { $0.element.0 != $0.element.1 })?
            .offset
        {
            throw LabError(description: "TCP transfer: received bytes differ from offset \(offset)")
        }
    }

    /// Waits until a TCP socket listens on `port` in `namespace`.
    func waitForListener(port: Int, in namespace: String, process: LabProcess) throws {
        try waitUntil("a listener on TCP port \(port) in \(namespace)", timeout: .seconds(10)) {
            let listening = try execute(["ss", "-Hltn", "sport", "=", ":\(port)"], in: namespace)
            if !listening.output.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty {
                return true
            }
            try process.requireRunning()
            return false
        }
    }
}
