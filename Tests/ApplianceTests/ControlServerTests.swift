import Foundation
import Packet
import TestSupport
import Testing

@testable import Appliance
@testable import ControlAPI
@testable import HostConfiguration
@testable import ProcessSpawning

#if canImport(Glibc)
    import Glibc
#endif

/// The server and client on a real Unix socket in a directory each test makes and removes.
// Serialized: every test's server and clients share NIO's singleton event loops, and the
// flood of 20,000 pipelined requests kept them busy long enough for another test's close to
// arrive after its client's 10 s timeout (a CI run under load).
@Suite(.serialized) struct ControlServerTests {
    /// Starts a server at `<directory>/control.sock`, runs `body`, and stops the server even
    /// when `body` fails.
    func withServer(
        group: String? = nil, maximumLineLength: Int = ControlLineDecoder.defaultMaximumLength,
        maximumConnections: Int = ControlServer.defaultMaximumConnections,
        requestRate: RequestRate? = .standard,
        _ body: (ControlServer, SampleHandler, TemporaryDirectory) async throws -> Void
    ) async throws {
        try await TemporaryDirectory.with { directory in
            let handler = SampleHandler()
            let server = try await ControlServer.start(
                at: directory.path + "/control.sock", group: group, handler: handler,
                maximumLineLength: maximumLineLength, maximumConnections: maximumConnections,
                requestRate: requestRate)
            do {
                try await body(server, handler, directory)
            } catch {
                await server.stop()
                throw error
            }
            await server.stop()
        }
    }

    @Test func everyCommandRoundTripsThroughTheSocket() async throws {
        try await withServer { server, _, _ in
            let client = try await ControlClient.connect(to: server.path)
            #expect(try await client.macTable() == Samples.macTable)
            #expect(
                try await client.macTable(ShowMACTable(logicalSwitch: "web"))
                    == Array(Samples.macTable.prefix(2)))
            #expect(
                try await client.macTable(ShowMACTable(mac: MACAddress("00:00:5e:00:53:bb")!))
                    == [Samples.macTable[3]])
            #expect(try await client.counters() == Samples.counters)
            #expect(try await client.configuration() == Samples.configuration)
            await #expect(
                throws: ControlClientError.refused(
                    command: "mac-table", message: "no logical switch named missing")
            ) {
                try await client.macTable(ShowMACTable(logicalSwitch: "missing"))
            }
            // The refusal left the connection usable.
            #expect(try await client.counters() == Samples.counters)
            await client.close()

            let path = server.path
            let blocking = try await onThread {
                try ControlClient.request(Configuration(), at: path)
            }
            #expect(blocking == .configuration(Samples.configuration))
        }
    }

    /// Beyond the cap, a connection is answered with the reason and closed, and counted; the
    /// open ones keep working, and one closing makes room again.
    @Test func connectionsBeyondTheCapAreRefusedAndCounted() async throws {
        try await withServer(maximumConnections: 2) { server, _, _ in
            let path = server.path
            let request = #"{"id":1,"command":"counters"}"# + "\n"
            try await onThread { () throws in
                let first = try RawConnection(path)
                let second = try RawConnection(path)
                for connection in [first, second] {
                    try connection.send(request)
                    #expect(try connection.readLine()?.hasPrefix(#"{"id":1,"ok":true"#) == true)
                }
                for _ in 0..<2 {
                    let third = try RawConnection(path)
                    #expect(
                        try third.readLine()
                            == #"{"id":null,"ok":false,"error":"too many control connections (at most 2 at once); try again when one has closed"}"#
                    )
                    #expect(try third.readLine() == nil, "closed after the refusal")
                }
                try second.send(request)
                #expect(try second.readLine()?.hasPrefix(#"{"id":1,"ok":true"#) == true)
            }
            #expect(server.refusedConnections == 2)
            // The two closed (their objects went): room for a new one.
            try await waitUntil("a connection is accepted again") { () async throws -> Bool in
                try await onThread { () throws -> Bool in
                    let again = try RawConnection(path)
                    try again.send(request)
                    return try again.readLine()?.hasPrefix(#"{"id":1,"ok":true"#) == true
                }
            }
        }
    }

    @Test func pipelinedRequestsAreAnsweredInOrderEvenWhenTheFirstIsSlow() async throws {
        try await withServer { server, _, _ in
            let path = server.path
            let ids = try await onThread { () throws -> [String] in
                let connection = try RawConnection(path)
                try connection.send(
                    #"{"id":1,"command":"mac-table","arguments":{"switch":"slow"}}"# + "\n"
                        + #"{"id":2,"command":"counters"}"# + "\n"
                        + #"{"id":3,"command":"nonsense"}"# + "\n"
                        + #"{"id":4,"command":"mac-table","arguments":{"mac":"00:00:5e:00:53:01"}}"#
                        + "\n")
                return try (1...4).map { _ in try connection.readLine() ?? "EOF" }
            }
            #expect(ids[0] == #"{"id":1,"ok":true,"result":[]}"#)
            #expect(ids[1].hasPrefix(#"{"id":2,"ok":true,"result":{"drops":"#))
            #expect(
                ids[2]
                    == #"{"id":3,"ok":false,"error":"unknown command \"nonsense\"; commands: "#
                    + ControlCommands.names.joined(separator: ", ") + #""}"#
            )
            #expect(
                ids[3]
                    == #"{"id":4,"ok":true,"result":[{"age":12,"mac":"00:00:5e:00:53:01","port":"eth1","static":false,"switch":"web","type":"local","vlan":100,"vni":5001}]}"#
            )
            // Concurrent requests from the client API are pipelined on one connection.
            let client = try await ControlClient.connect(to: server.path)
            async let slow = client.macTable(ShowMACTable(logicalSwitch: "slow"))
            async let fast = client.counters()
            #expect(try await (slow, fast) == ([], Samples.counters))
            await client.close()
        }
    }

    /// Without a request rate limit (what this test is about is the backlog: 20,000 at once
    /// is far beyond the standard rate's burst).
    @Test func thousandsOfPipelinedRequestsAreAllAnsweredInOrder() async throws {
        try await withServer(requestRate: nil) { server, _, _ in
            let path = server.path
            let count = 20000
            let lines = try await onThread { () throws -> [String] in
                let connection = try RawConnection(path)
                // Far more than the server queues (it stops reading meanwhile), sent before
                // reading any answer.
                var requests = ""
                for id in 1...count {
                    requests +=
                        #"{"id":\#(id),"command":"mac-table","arguments":{"switch":"none"}}"# + "\n"
                }
                try connection.send(requests)
                connection.shutdownWrite()
                var lines: [String] = []
                while let line = try connection.readLine() { lines.append(line) }
                return lines
            }
            #expect(lines == (1...count).map { #"{"id":\#($0),"ok":true,"result":[]}"# })
        }
    }

    @Test func badInputIsAnsweredAndOnlyItsConnectionIsClosed() async throws {
        try await withServer(maximumLineLength: 4096) { server, _, _ in
            let path = server.path
            // A well-behaved client stays connected through all of it.
            let bystander = try await ControlClient.connect(to: path)
            let transcripts = try await onThread { () throws -> [[String]] in
                func conversation(_ bytes: [UInt8]) throws -> [String] {
                    let connection = try RawConnection(path)
                    try connection.send(bytes)
                    var lines: [String] = []
                    while let line = try connection.readLine() { lines.append(line) }
                    return lines
                }
                let valid = Array((#"{"id":2,"command":"counters"}"# + "\n").utf8)
                return [
                    try conversation(Array("this is not json\n".utf8) + valid),
                    try conversation([0x7B, 0xFF, 0x7D, 0x0A] + valid),
                    try conversation(
                        Array(repeating: UInt8(ascii: "x"), count: 100_000) + [0x0A] + valid),
                ]
            }
            #expect(transcripts[0].count == 1)
            #expect(
                transcripts[0].first?.hasPrefix(
                    #"{"id":null,"ok":false,"error":"request is not valid JSON"#) == true)
            #expect(
                transcripts[1] == [#"{"id":null,"ok":false,"error":"request is not valid UTF-8"}"#])
            #expect(
                transcripts[2] == [
                    #"{"id":null,"ok":false,"error":"request line longer than 4096 bytes"}"#
                ])
            #expect(server.refusals.count(.requestSize) == 1)

            // Valid JSON that is not a valid request is refused, and the connection goes on.
            let answers = try await onThread { () throws -> [String] in
                let connection = try RawConnection(path)
                try connection.send(
                    #"{"id":5,"command":"mac-table","arguments":{"switch":["web"]}}"# + "\n"
                        + #"{"id":"six","command":"counters"}"# + "\n"
                        + #"{"id":7,"command":"shutdown"}"# + "\n"
                        + #"{"id":8,"command":"mac-table","arguments":{"switch":"web","mac":"00:00:5e:00:53:02"}}"#
                        + "\n")
                connection.shutdownWrite()
                var lines: [String] = []
                while let line = try connection.readLine() { lines.append(line) }
                return lines
            }
            #expect(
                answers == [
                    #"{"id":5,"ok":false,"error":"argument \"switch\" of mac-table must be a string"}"#,
                    #"{"id":null,"ok":false,"error":"request needs an integer \"id\""}"#,
                    #"{"id":7,"ok":false,"error":"unknown command \"shutdown\"; commands: "#
                        + ControlCommands.names.joined(separator: ", ") + #""}"#,
                    #"{"id":8,"ok":true,"result":[{"mac":"00:00:5e:00:53:02","static":true,"switch":"web","type":"remote","vni":5001,"vtep":"192.0.2.2"}]}"#,
                ])
            #expect(try await bystander.counters() == Samples.counters)
            await bystander.close()
        }
    }

    @Test func aLineOfMoreThanOneMebibyteIsRefusedWithoutBufferingIt() async throws {
        try await withServer { server, _, _ in
            let path = server.path
            let lines = try await onThread { () throws -> [String] in
                let connection = try RawConnection(path)
                // 4 MiB with no newline: the server must answer without waiting for the end.
                let chunk = [UInt8](repeating: UInt8(ascii: "a"), count: 1 << 16)
                for _ in 0..<64 { guard try connection.send(chunk) else { break } }
                var lines: [String] = []
                while let line = try connection.readLine() { lines.append(line) }
                return lines
            }
            #expect(
                lines == [
                    #"{"id":null,"ok":false,"error":"request line longer than 1048576 bytes"}"#
                ])
            let client = try await ControlClient.connect(to: path)
            #expect(try await client.counters() == Samples.counters)
            await client.close()
        }
    }

    /// Beyond its burst, a connection's requests are answered with a refusal naming the limit
    /// and counted; the connection stays open, another connection has its own bucket, and
    /// the refused connection is served again once its bucket refills.
    @Test func requestsBeyondAConnectionsRateAreRefusedAndCounted() async throws {
        try await withServer(requestRate: RequestRate(perSecond: 2, burst: 5)) { server, _, _ in
            let path = server.path
            let answers = try await onThread { () throws -> [String] in
                let connection = try RawConnection(path)
                var requests = ""
                for id in 1...12 { requests += #"{"id":\#(id),"command":"counters"}"# + "\n" }
                try connection.send(requests)
                return try (1...12).map { _ in try connection.readLine() ?? "EOF" }
            }
            let refusal = { (id: Int) in
                #"{"id":\#(id),"ok":false,"error":"too many requests on this connection (at most 2 a second, 5 at once); slow down"}"#
            }
            for (i, answer) in answers.enumerated().prefix(5) {
                #expect(answer.hasPrefix(#"{"id":\#(i + 1),"ok":true"#), "within the burst")
            }
            // Sent at once, 12 requests take far less than the half second a token takes.
            #expect(Array(answers.suffix(7)) == (6...12).map(refusal))
            #expect(server.refusals.count(.requestRate) == 7)

            // Another connection has a full bucket of its own.
            let client = try await ControlClient.connect(to: path)
            #expect(try await client.counters() == Samples.counters)
            await client.close()
        }
    }

    /// The bucket itself, on an exact clock: the burst at once, then `perSecond` a second,
    /// never more than the burst saved up, and no fraction of a refill lost.
    @Test func theRequestBucketRefillsAtItsRate() {
        let start = ContinuousClock.now
        var bucket = RequestBucket(RequestRate(perSecond: 10, burst: 2), now: start)
        func admit(_ now: ContinuousClock.Instant) -> Bool { bucket.admit(now: now) }
        #expect(admit(start))
        #expect(admit(start))
        #expect(!admit(start))
        #expect(!admit(start + .milliseconds(60)))
        // 60 + 40 ms: one token, made of two partial refills.
        #expect(admit(start + .milliseconds(100)))
        #expect(!admit(start + .milliseconds(100)))
        // An hour idle saves up the burst, not more.
        let later = start + .seconds(3600)
        #expect(admit(later))
        #expect(admit(later))
        #expect(!admit(later))
    }

    /// A storm of refusals reaches the log once, then once a minute with the count since.
    @Test func refusalsAreLoggedOnceNotOncePerRefusal() {
        let log = LogRecorder()
        let refusals = ControlRefusals(logger: log.logger)
        let start = ContinuousClock.now
        for i in 0..<1000 {
            refusals.refused(.requestRate, "refusing", now: start + .milliseconds(i))
        }
        #expect(refusals.count(.requestRate) == 1000)
        #expect(log.recorded.count == 1)
        refusals.refused(.requestSize, "too long", now: start)
        #expect(log.recorded.count == 2, "each limit has its own line")
        refusals.refused(.requestRate, "refusing", now: start + .seconds(61))
        #expect(log.recorded.count == 3)
        #expect(log.recorded.last?.contains("refusals=1000") == true, "the 999 held back and this")
    }

    @Test func everyRequestCarriesThePeersKernelCredentials() async throws {
        try await withServer { server, handler, _ in
            let client = try await ControlClient.connect(to: server.path)
            _ = try await client.counters()
            _ = try await client.macTable()
            await client.close()
            let me = PeerCredentials(pid: getpid(), uid: getuid(), gid: getgid())
            #expect(handler.seenPeers == [me, me])
            #expect(me.userName == String(cString: getpwuid(getuid()).pointee.pw_name))
        }
    }

    @Test func theSocketIsMode0660AndTakesTheAdminsGroupWhenItExists() async throws {
        // Debian's "nogroup" (65534) stands in for vtep-admin: a group we are not in by default.
        guard let nogroup = UnixSocketFile.groupID(named: "nogroup") else {
            Issue.record("this test needs Debian's group \"nogroup\" in /etc/group")
            return
        }
        #expect(nogroup != getegid())
        try await withServer(group: "nogroup") { server, _, _ in
            var info = stat()
            #expect(lstat(server.path, &info) == 0)
            #expect(info.st_mode & S_IFMT == S_IFSOCK)
            #expect(info.st_mode & 0o7777 == 0o660)
            #expect(info.st_gid == nogroup)
            // No provisional file is left behind.
            #expect(access(server.path + "~", F_OK) != 0)
        }
        let log = LogRecorder()
        try await TemporaryDirectory.with { directory in
            let server = try await ControlServer.start(
                at: directory.path + "/control.sock", group: "vtep-admin-absent-group",
                handler: SampleHandler(), logger: log.logger)
            var info = stat()
            #expect(lstat(server.path, &info) == 0)
            #expect(info.st_mode & 0o7777 == 0o660)
            #expect(info.st_gid == getegid())
            await server.stop()
        }
        #expect(log.recorded.count == 1)
        #expect(
            log.recorded.first?.hasSuffix(
                "keeps its group: group vtep-admin-absent-group does not exist "
                    + "(create it to let its members use the shell)") == true)
    }

    @Test func aSecondServerOnALivePathIsRefusedAndTheFirstKeepsServing() async throws {
        try await withServer { server, _, _ in
            await #expect(throws: ControlServerError.alreadyServed(path: server.path)) {
                _ = try await ControlServer.start(
                    at: server.path, group: nil, handler: SampleHandler())
            }
            let client = try await ControlClient.connect(to: server.path)
            #expect(try await client.counters() == Samples.counters)
            await client.close()
        }
    }

    @Test func aStaleSocketFileIsReplacedButNotAnythingElse() async throws {
        try await TemporaryDirectory.with { directory in
            let path = directory.path + "/control.sock"
            // What a daemon killed with SIGKILL leaves: a socket file, no listener. Made with
            // mknod(2): a socket bound and then closed here could live on in a child another
            // test spawns at that moment, until its exec.
            #expect(mknod(path, S_IFSOCK | 0o600, 0) == 0)
            #expect(try UnixSocketFile.probe(path) == .stale)

            let server = try await ControlServer.start(
                at: path, group: nil, handler: SampleHandler())
            let client = try await ControlClient.connect(to: path)
            #expect(try await client.counters() == Samples.counters)
            await client.close()
            await server.stop()

            let regular = directory.path + "/not-a-socket"
            #expect(FileManager.default.createFile(atPath: regular, contents: Data("keep".utf8)))
            await #expect(throws: ControlServerError.notASocket(path: regular)) {
                _ = try await ControlServer.start(at: regular, group: nil, handler: SampleHandler())
            }
            #expect(FileManager.default.contents(atPath: regular) == Data("keep".utf8))

            let long = directory.path + "/" + String(repeating: "s", count: 120)
            await #expect(throws: ControlServerError.pathTooLong(path: long, limit: 107)) {
                _ = try await ControlServer.start(at: long, group: nil, handler: SampleHandler())
            }
        }
    }

    @Test func stopClosesConnectionsAndRemovesTheSocket() async throws {
        try await TemporaryDirectory.with { directory in
            let path = directory.path + "/control.sock"
            let server = try await ControlServer.start(
                at: path, group: nil, handler: SampleHandler())
            let idle = try await ControlClient.connect(to: path)
            let raw = try RawConnection(path)
            #expect(try await idle.counters() == Samples.counters)
            await server.stop()
            #expect(access(path, F_OK) != 0)
            // Blocking here is fine: the server is gone, nothing needs this thread.
            #expect(try raw.readLine() == nil)
            await #expect(throws: ControlClientError.disconnected(command: "counters")) {
                try await idle.counters()
            }
            await #expect(throws: ControlClientError.cannotConnect(path: path, errno: ENOENT)) {
                try await ControlClient.connect(to: path)
            }
            // A stopped server's path is free for the next one.
            let next = try await ControlServer.start(at: path, group: nil, handler: SampleHandler())
            await next.stop()
        }
    }

    @Test func aStoppingServerLeavesASuccessorsSocketAlone() async throws {
        try await TemporaryDirectory.with { directory in
            let path = directory.path + "/control.sock"
            let first = try await ControlServer.start(
                at: path, group: nil, handler: SampleHandler())
            // An operator moved the old socket away and started a new daemon.
            #expect(rename(path, directory.path + "/old.sock") == 0)
            let second = try await ControlServer.start(
                at: path, group: nil, handler: SampleHandler())
            await first.stop()
            #expect(access(path, F_OK) == 0)
            let client = try await ControlClient.connect(to: path)
            #expect(try await client.counters() == Samples.counters)
            await client.close()
            await second.stop()
        }
    }

    @Test func theClientTimesOutOnASlowAnswer() async throws {
        try await withServer { server, _, _ in
            let client = try await ControlClient.connect(to: server.path)
            await #expect(throws: ControlClientError.timedOut(command: "mac-table", seconds: 0.05))
            {
                try await client.send(
                    ShowMACTable(logicalSwitch: "slow"), timeout: .milliseconds(50))
            }
            // The late answer is dropped; the next request gets its own.
            #expect(try await client.counters() == Samples.counters)
            await client.close()
        }
    }
}
