import Appliance
import NIOCore

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

extension PeerCredentials {
    /// Reads `SO_PEERCRED` of a connected Unix socket channel.
    static func read(_ channel: any Channel) -> EventLoopFuture<PeerCredentials> {
        guard let provider = channel as? any SocketOptionProvider else {
            return channel.eventLoop.makeFailedFuture(
                ControlServerError.peerCredentialsUnavailable(reason: "the channel is not a socket")
            )
        }
        return readPeerCredentials(provider)
            .map { PeerCredentials(pid: $0.pid, uid: $0.uid, gid: $0.gid) }
            .flatMapErrorThrowing { error in
                throw ControlServerError.peerCredentialsUnavailable(reason: "\(error)")
            }
    }
}

/// `struct ucred` from <sys/socket.h> (pid_t, uid_t, gid_t: three 32-bit fields on Linux),
/// which Glibc's Swift module does not export without `_GNU_SOURCE`.
private struct UCred: Sendable {
    var pid: Int32 = 0
    var uid: UInt32 = 0
    var gid: UInt32 = 0
}

// Kept out of public/inlinable code: SwiftNIO warns that libc types crossing module boundaries
// through `unsafeGetSocketOption` can miscompile in release builds.
private func readPeerCredentials(_ provider: any SocketOptionProvider) -> EventLoopFuture<UCred> {
    provider.unsafeGetSocketOption(
        level: SocketOptionLevel(SOL_SOCKET), name: SocketOptionName(SO_PEERCRED))
}
