import CInterposeLinux
import NIOCore
#if canImport(Glibc)
import Glibc
#endif

/// Reads where an accepted connection was headed before nftables redirected it.
public enum ChannelOriginalDestination {
    /// SO_ORIGINAL_DST (IPv4) / IP6T_SO_ORIGINAL_DST (IPv6): both are option 80 at their level
    /// (linux/netfilter_ipv4.h, linux/netfilter_ipv6/ip6_tables.h; kept out of Swift, see the shim).
    static let soOriginalDst: Int32 = 80

    /// The original destination of a redirected connection, or nil when it was not redirected
    /// (the kernel answers ENOENT) or the channel is not a socket. Must run on the channel's event loop.
    public static func read(_ channel: Channel) -> EventLoopFuture<SocketAddress?> {
        guard let provider = channel as? SocketOptionProvider, let local = channel.localAddress else {
            return channel.eventLoop.makeSucceededFuture(nil)
        }
        switch local {
        case .v4:
            let f: EventLoopFuture<sockaddr_in> = provider.unsafeGetSocketOption(level: SocketOptionLevel(SOL_IP), name: SocketOptionName(soOriginalDst))
            return f.map { sin -> SocketAddress? in SocketAddress(sin, host: "") }.recover { _ in nil }
        case .v6:
            let f: EventLoopFuture<sockaddr_in6> = provider.unsafeGetSocketOption(level: SocketOptionLevel(SOL_IPV6), name: SocketOptionName(soOriginalDst))
            return f.map { sin6 -> SocketAddress? in SocketAddress(sin6, host: "") }.recover { _ in nil }
        default:
            return channel.eventLoop.makeSucceededFuture(nil)
        }
    }
}
