import CInterposeLinux
#if canImport(Glibc)
import Glibc
#endif

/// A blocking TCP socket with the few operations the capture checks need. Owns its descriptor.
public final class TCPSocket: @unchecked Sendable {
    public let fd: Int32
    public let family: SocketEndpoint.Family

    private var owned = true

    init(fd: Int32, family: SocketEndpoint.Family) {
        self.fd = fd
        self.family = family
    }

    deinit { if owned { close(fd) } }

    /// Hands the descriptor over (to SwiftNIO): this object no longer closes it.
    public func takeDescriptor() -> Int32 {
        owned = false
        return fd
    }

    /// Listens on the wildcard address of one family (IPv6 sockets are v6-only so both can share a port).
    /// `transparent` sets IP(V6)_TRANSPARENT, which a TPROXY rule needs to hand the socket connections.
    public static func listen(family: SocketEndpoint.Family, port: UInt16, transparent: Bool = false) throws -> TCPSocket {
        let domain = family == .v4 ? AF_INET : AF_INET6
        let fd = try syscall("socket") { socket(domain, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0) }
        let s = TCPSocket(fd: fd, family: family)
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        if family == .v6 { setsockopt(fd, Int32(IPPROTO_IPV6), IPV6_V6ONLY, &one, socklen_t(MemoryLayout<Int32>.size)) }
        if transparent { try syscall("setsockopt(IP_TRANSPARENT)") { cinterpose_set_transparent(fd, domain) } }
        let any = SocketEndpoint(family: family, host: family == .v4 ? "0.0.0.0" : "::", port: port)
        try any.withSockaddr { addr, len in _ = try syscall("bind(\(any))") { bind(fd, addr, len) } }
        try syscall("listen") { Glibc.listen(fd, 128) }
        return s
    }

    /// Connects with a timeout; a refused or timed-out connection throws.
    public static func connect(to address: SocketEndpoint, from source: SocketEndpoint? = nil, timeoutMillis: Int32) throws -> TCPSocket {
        let fd = try syscall("socket") { socket(address.domain, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0) }
        let s = TCPSocket(fd: fd, family: address.family)
        if let source {
            try source.withSockaddr { addr, len in _ = try syscall("bind(\(source))") { bind(fd, addr, len) } }
        }
        let r = try address.withSockaddr { addr, len in Glibc.connect(fd, addr, len) }
        if r != 0 {
            guard errno == EINPROGRESS else { throw SystemError("connect(\(address))", errno: errno) }
            var pfd = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
            let n = try syscall("poll") { poll(&pfd, 1, timeoutMillis) }
            guard n == 1 else { throw SystemError("connect(\(address))", errno: ETIMEDOUT) }
            var err: Int32 = 0
            var len = socklen_t(MemoryLayout<Int32>.size)
            getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len)
            if err != 0 { throw SystemError("connect(\(address))", errno: err) }
        }
        let flags = fcntl(fd, F_GETFL)
        _ = fcntl(fd, F_SETFL, flags & ~Int32(O_NONBLOCK))
        return s
    }

    /// Accepts one connection (blocks until one arrives; use `waitReadable` first to bound the wait).
    public func accept() throws -> TCPSocket {
        let c = try syscall("accept") { Glibc.accept(fd, nil, nil) }
        return TCPSocket(fd: c, family: family)
    }

    public func localAddress() throws -> SocketEndpoint {
        var st = sockaddr_storage()
        var len = socklen_t(MemoryLayout<sockaddr_storage>.size)
        try withUnsafeMutablePointer(to: &st) { p in
            _ = try p.withMemoryRebound(to: sockaddr.self, capacity: 1) { sa in try syscall("getsockname") { getsockname(fd, sa, &len) } }
        }
        guard let a = SocketEndpoint(storage: st) else { throw SystemError("getsockname", errno: EAFNOSUPPORT) }
        return a
    }

    public func peerAddress() throws -> SocketEndpoint {
        var st = sockaddr_storage()
        var len = socklen_t(MemoryLayout<sockaddr_storage>.size)
        try withUnsafeMutablePointer(to: &st) { p in
            _ = try p.withMemoryRebound(to: sockaddr.self, capacity: 1) { sa in try syscall("getpeername") { getpeername(fd, sa, &len) } }
        }
        guard let a = SocketEndpoint(storage: st) else { throw SystemError("getpeername", errno: EAFNOSUPPORT) }
        return a
    }

    /// The destination before NAT (SO_ORIGINAL_DST / IP6T_SO_ORIGINAL_DST); ENOENT when not NATed.
    public func originalDestination() throws -> SocketEndpoint {
        var st = sockaddr_storage()
        var len = socklen_t(0)
        try syscall("getsockopt(SO_ORIGINAL_DST)") { cinterpose_original_dst(fd, family == .v4 ? AF_INET : AF_INET6, &st, &len) }
        guard let a = SocketEndpoint(storage: st) else { throw SystemError("getsockopt(SO_ORIGINAL_DST)", errno: EAFNOSUPPORT) }
        return a
    }

    public func write(_ text: String) throws { try write(bytes: Array(text.utf8)) }

    public func write(bytes input: [UInt8]) throws {
        var bytes = input
        var off = 0
        while off < bytes.count {
            let n = try bytes.withUnsafeMutableBytes { b in try syscall("send") { send(fd, b.baseAddress! + off, b.count - off, Int32(MSG_NOSIGNAL)) } }
            off += n
        }
    }

    /// Reads until a newline, end of stream, or timeout; returns what arrived.
    public func readLine(timeoutMillis: Int32, limit: Int = 4096) throws -> String {
        var data: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 1024)
        while data.count < limit, !data.contains(10) {
            var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            let ready = try syscall("poll") { poll(&pfd, 1, timeoutMillis) }
            if ready == 0 { throw SystemError("recv", errno: ETIMEDOUT) }
            let n = try syscall("recv") { recv(fd, &buf, buf.count, 0) }
            if n == 0 {
                // Closed by the peer: with nothing received, that is a refusal, not an answer.
                if data.isEmpty { throw SystemError("recv", errno: ECONNRESET) }
                break
            }
            data += buf[0..<n]
        }
        while let last = data.last, last == 10 || last == 13 { data.removeLast() }
        return String(decoding: data, as: UTF8.self)
    }
}
