import Logging
import ServiceLifecycle
import SystemdNotify

/// vtepd's side of systemd's `Type=notify` service with a watchdog: `READY=1` once the
/// services run (the gateway started them all before: worker forwarding, database up, control
/// socket listening), `WATCHDOG=1` every half interval while the data plane's worker answers
/// between batches (a worker stuck in a batch stops the pings, and systemd kills and restarts
/// vtepd), `STOPPING=1` when the graceful shutdown begins.
///
/// Last in the services, so the first to hear of the shutdown.
public struct ServiceManagerNotifications: Service {
    let notifier: SystemdNotifier
    let watchdog: Duration?
    let status: String
    let workerAnswers: @Sendable () async -> Void
    let logger = Logger(label: "vtepd.systemd")

    public init(
        notifier: SystemdNotifier, watchdog: Duration?, status: String,
        workerAnswers: @escaping @Sendable () async -> Void
    ) {
        self.notifier = notifier
        self.watchdog = watchdog
        self.status = status
        self.workerAnswers = workerAnswers
    }

    public func run() async throws {
        send(["READY=1", "STATUS=\(status)"])
        if let watchdog {
            let notifier = notifier
            let workerAnswers = workerAnswers
            let logger = logger
            await cancelWhenGracefulShutdownOrCancelled {
                while !Task.isCancelled {
                    try? await Task.sleep(for: watchdog / 2)
                    if Task.isCancelled { break }
                    await workerAnswers()
                    do { try notifier.notify(["WATCHDOG=1"]) } catch {
                        logger.warning("the watchdog ping was not sent: \(error)")
                    }
                }
            }
        } else {
            try? await gracefulShutdown()
        }
        send(["STOPPING=1", "STATUS=stopping"])
    }

    private func send(_ assignments: [String]) {
        do { try notifier.notify(assignments) } catch {
            logger.error("systemd was not told \(assignments.joined(separator: " ")): \(error)")
        }
    }
}
