import Datapath
import Glibc
import Testing

/// The worker's wait (`Readiness`): as poll(2) over the same table, on pipes. Only the ready
/// slots are marked, absent descriptors are left out, readiness is level-triggered (data left
/// unread is ready again), and a wait with nothing ready times out.
@Suite struct ReadinessTests {
    @Test func marksTheReadySlotsAsPollWould() throws {
        var pipes: [[Int32]] = []
        for _ in 0..<3 {
            var ends: [Int32] = [-1, -1]
            try #require(pipe(&ends) == 0)
            _ = fcntl(ends[0], F_SETFL, O_NONBLOCK)
            pipes.append(ends)
        }
        defer {
            for ends in pipes {
                close(ends[0])
                close(ends[1])
            }
        }
        // Slot 1 is an absent socket.
        var table = [pipes[0][0], -1, pipes[1][0], pipes[2][0]].map {
            pollfd(fd: $0, events: Int16(POLLIN), revents: Int16(POLLIN))
        }
        let readiness = Readiness(table)
        #expect(readiness.wait(&table, timeout: 0) == 0)
        #expect(table.allSatisfy { $0.revents == 0 }, "stale revents cleared")

        var byte: UInt8 = 1
        #expect(write(pipes[1][1], &byte, 1) == 1)
        #expect(write(pipes[2][1], &byte, 1) == 1)
        #expect(readiness.wait(&table, timeout: 1000) == 2)
        #expect(table.map { $0.revents != 0 } == [false, false, true, true])
        // Nothing read: ready again.
        #expect(readiness.wait(&table, timeout: 0) == 2)
        #expect(read(pipes[1][0], &byte, 1) == 1)
        #expect(readiness.wait(&table, timeout: 0) == 1)
        #expect(table.map { $0.revents != 0 } == [false, false, false, true])

        // Poll's own answer over the same table agrees.
        let polled = table.map { pollfd(fd: $0.fd, events: $0.events, revents: 0) }
        var copy = polled
        #expect(poll(&copy, nfds_t(copy.count), 0) == 1)
        #expect(copy.map { $0.revents != 0 } == table.map { $0.revents != 0 })

        #expect(read(pipes[2][0], &byte, 1) == 1)
        let start = ContinuousClock.now
        #expect(readiness.wait(&table, timeout: 50) == 0)
        #expect(ContinuousClock.now - start >= .milliseconds(40), "waited for the timeout")
    }
}
