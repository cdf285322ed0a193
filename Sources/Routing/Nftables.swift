import CNftables
import Datapath
import Foundation
import Synchronization

/// nftables through libnftables, in a named network namespace: each call runs on a thread of
/// its own that enters the namespace first (setns(2) moves only the calling thread), so the
/// library's netlink socket belongs to the router's namespace and vtepd's other threads stay
/// where they are. Blocking: call it off the cooperative threads.
public enum Nftables {
    /// Runs `commands` (nft(8) syntax; a whole buffer is one transaction) in the namespace at
    /// `namespacePath`; returns what nft printed, as JSON when `json`. Throws nft's own
    /// message when it refuses.
    public static func run(
        _ commands: String, inNamespace namespacePath: String, json: Bool = false
    )
        throws(RouterError) -> String
    {
        let result = Mutex<Result<String, RouterError>>(.failure(RouterError("not run")))
        NamespaceThread.run(in: namespacePath) { entered in
            if let entered {
                result.withLock { $0 = .failure(entered) }
                return
            }
            let outcome = runHere(commands, json: json)
            result.withLock { $0 = outcome }
        }
        return try result.withLock { (r) throws(RouterError) -> String in try r.get() }
    }

    /// Runs `commands` in the calling thread's own network namespace (vtepd's).
    public static func run(_ commands: String, json: Bool = false) throws(RouterError) -> String {
        try runHere(commands, json: json).get()
    }

    private static func runHere(_ commands: String, json: Bool) -> Result<String, RouterError> {
        guard let context = nft_ctx_new(UInt32(NFT_CTX_DEFAULT)) else {
            return .failure(RouterError("libnftables: no context"))
        }
        defer { nft_ctx_free(context) }
        _ = nft_ctx_buffer_output(context)
        _ = nft_ctx_buffer_error(context)
        if json { nft_ctx_output_set_flags(context, UInt32(NFT_CTX_OUTPUT_JSON)) }
        let status = nft_run_cmd_from_buffer(context, commands)
        let output = nft_ctx_get_output_buffer(context).map { String(cString: $0) } ?? ""
        let errors = nft_ctx_get_error_buffer(context).map { String(cString: $0) } ?? ""
        return status == 0
            ? .success(output)
            : .failure(
                RouterError(
                    "nftables refused the ruleset: "
                        + errors.trimmingCharacters(in: .whitespacesAndNewlines)))
    }
}

/// A thread of its own inside a named network namespace, for the calls that act on the
/// namespace they run in (libnftables' netlink socket, /proc/sys/net).
enum NamespaceThread {
    /// Runs `body` on a new thread that entered the namespace at `path` (`body` gets nil) or
    /// failed to (`body` gets why); returns when `body` has.
    static func run(in path: String, _ body: @escaping @Sendable (RouterError?) -> Void) {
        let done = DispatchSemaphore(value: 0)
        let thread = Thread {
            defer { done.signal() }
            do {
                try NetworkNamespace.enterOnCurrentThread(path: path)
            } catch {
                body(RouterError("entering network namespace \(path): \(error)"))
                return
            }
            body(nil)
        }
        thread.name = "vtepd-router"
        thread.start()
        done.wait()
    }

    /// Reads the sysctl file `path` (under /proc/sys/net) as the namespace at `namespacePath`
    /// sees it.
    static func sysctl(_ path: String, inNamespace namespacePath: String) throws(RouterError)
        -> String
    {
        let result = Mutex<Result<String, RouterError>>(.failure(RouterError("not read")))
        run(in: namespacePath) { entered in
            if let entered {
                result.withLock { $0 = .failure(entered) }
                return
            }
            let fd = open(path, O_RDONLY | O_CLOEXEC)
            guard fd >= 0 else {
                result.withLock {
                    $0 = .failure(RouterError("\(path): \(String(cString: strerror(errno)))"))
                }
                return
            }
            defer { close(fd) }
            var bytes = [UInt8](repeating: 0, count: 64)
            let n = read(fd, &bytes, bytes.count)
            let text = n > 0 ? String(decoding: bytes[..<n], as: UTF8.self) : ""
            result.withLock { $0 = .success(text.trimmingCharacters(in: .whitespacesAndNewlines)) }
        }
        return try result.withLock { (r) throws(RouterError) -> String in try r.get() }
    }

    /// Writes `value` to the sysctl file `path` (under /proc/sys/net) of the namespace at
    /// `namespacePath`.
    static func sysctl(_ path: String, _ value: String, inNamespace namespacePath: String)
        throws(RouterError)
    {
        let failure = Mutex<RouterError?>(nil)
        run(in: namespacePath) { entered in
            if let entered {
                failure.withLock { $0 = entered }
                return
            }
            let fd = open(path, O_WRONLY | O_CLOEXEC)
            guard fd >= 0 else {
                failure.withLock {
                    $0 = RouterError("\(path): \(String(cString: strerror(errno)))")
                }
                return
            }
            defer { close(fd) }
            let bytes = Array(value.utf8)
            if write(fd, bytes, bytes.count) != bytes.count {
                failure.withLock {
                    $0 = RouterError("\(path): \(String(cString: strerror(errno)))")
                }
            }
        }
        if let error = failure.withLock({ $0 }) { throw error }
    }
}
