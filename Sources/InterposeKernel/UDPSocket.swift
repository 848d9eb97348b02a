import CInterposeLinux
#if canImport(Glibc)
import Glibc
#endif

/// A blocking UDP socket: enough to show where a captured datagram (DNS) arrives.
public final class UDPSocket: @unchecked Sendable {
    public let fd: Int32
    public let family: SocketEndpoint.Family

    init(fd: Int32, family: SocketEndpoint.Family) {
        self.fd = fd
        self.family = family
    }

    deinit { close(fd) }

    public static func bind(family: SocketEndpoint.Family, port: UInt16) throws -> UDPSocket {
        let fd = try syscall("socket") { socket(family == .v4 ? AF_INET : AF_INET6, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0) }
        let s = UDPSocket(fd: fd, family: family)
        var one: Int32 = 1
        if family == .v6 { setsockopt(fd, Int32(IPPROTO_IPV6), IPV6_V6ONLY, &one, socklen_t(MemoryLayout<Int32>.size)) }
        let any = SocketEndpoint(family: family, host: family == .v4 ? "0.0.0.0" : "::", port: port)
        try any.withSockaddr { addr, len in _ = try syscall("bind(\(any))") { Glibc.bind(fd, addr, len) } }
        return s
    }

    /// Answers one waiting datagram with `reply(sender)`.
    public func answerOne(_ reply: (SocketEndpoint) -> String) throws {
        var buf = [UInt8](repeating: 0, count: 2048)
        var st = sockaddr_storage()
        var len = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let n = try withUnsafeMutablePointer(to: &st) { p in
            try p.withMemoryRebound(to: sockaddr.self, capacity: 1) { sa in try syscall("recvfrom") { recvfrom(fd, &buf, buf.count, 0, sa, &len) } }
        }
        _ = n
        guard let sender = SocketEndpoint(storage: st) else { return }
        let bytes = Array(reply(sender).utf8)
        _ = try withUnsafePointer(to: &st) { p in
            try p.withMemoryRebound(to: sockaddr.self, capacity: 1) { sa in try syscall("sendto") { sendto(fd, bytes, bytes.count, 0, sa, len) } }
        }
    }

    /// Sends one datagram to `address` and waits for one answer.
    public static func exchange(with address: SocketEndpoint, payload: String, timeoutMillis: Int32) throws -> String {
        let fd = try syscall("socket") { socket(address.domain, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0) }
        let s = UDPSocket(fd: fd, family: address.family)
        let bytes = Array(payload.utf8)
        try address.withSockaddr { addr, len in _ = try syscall("sendto(\(address))") { sendto(s.fd, bytes, bytes.count, 0, addr, len) } }
        var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        guard try syscall("poll", { poll(&pfd, 1, timeoutMillis) }) == 1 else { throw SystemError("recv", errno: ETIMEDOUT) }
        var buf = [UInt8](repeating: 0, count: 2048)
        let n = try syscall("recv") { recv(fd, &buf, buf.count, 0) }
        return String(decoding: buf[0..<n], as: UTF8.self).split(separator: "\n").first.map(String.init) ?? ""
    }
}

/// Waits until any of the descriptors is readable; returns the ready ones (empty on timeout).
public func waitReadable(_ fds: [Int32], timeoutMillis: Int32) throws -> [Int32] {
    var pfds = fds.map { pollfd(fd: $0, events: Int16(POLLIN), revents: 0) }
    let n = try syscall("poll") { poll(&pfds, nfds_t(pfds.count), timeoutMillis) }
    guard n > 0 else { return [] }
    return pfds.filter { $0.revents & Int16(POLLIN) != 0 }.map(\.fd)
}
