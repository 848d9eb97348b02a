#if canImport(Glibc)
import Glibc
#endif

/// A plain `GET` over HTTP/1.0 with a deadline, for ValueList URLs refreshed in the background.
/// (Small on purpose: one request every refresh interval, off the request path; https is not spoken.)
public enum HTTPFetch {
    public struct Failure: Error, CustomStringConvertible {
        public let description: String
    }

    /// The body of a 200 answer. Any other status, a timeout or a bad URL is a Failure saying which.
    public static func get(_ url: String, timeoutMillis: Int32 = 2000) throws(Failure) -> String {
        guard url.hasPrefix("http://") else { throw Failure(description: "\(url): only http:// URLs are fetched") }
        let rest = url.dropFirst("http://".count)
        let slash = rest.firstIndex(of: "/") ?? rest.endIndex
        let authority = String(rest[..<slash])
        let path = slash == rest.endIndex ? "/" : String(rest[slash...])
        var hostPart = authority
        var port: UInt16 = 80
        if let colon = authority.lastIndex(of: ":"), !authority.hasSuffix("]") {
            guard let p = UInt16(authority[authority.index(after: colon)...]) else { throw Failure(description: "\(url): bad port") }
            port = p
            hostPart = String(authority[..<colon])
        }
        hostPart = hostPart.trimmingCharacters(in: ["[", "]"])
        let address = DNSResolver.resolve(hostPart).first ?? hostPart
        guard let endpoint = SocketEndpoint.parse(address.contains(":") ? "[\(address)]:\(port)" : "\(address):\(port)") else {
            throw Failure(description: "\(url): cannot resolve \(hostPart)")
        }
        do {
            let socket = try TCPSocket.connect(to: endpoint, timeoutMillis: timeoutMillis)
            try socket.write("GET \(path) HTTP/1.0\r\nHost: \(authority)\r\nUser-Agent: interpose\r\nConnection: close\r\n\r\n")
            var data: [UInt8] = []
            var buf = [UInt8](repeating: 0, count: 16384)
            // One deadline for the whole answer: a server dripping a byte at a time cannot hold the fetch.
            var start = timespec()
            clock_gettime(CLOCK_MONOTONIC, &start)
            while true {
                var now = timespec()
                clock_gettime(CLOCK_MONOTONIC, &now)
                let left = Int(timeoutMillis) - ((now.tv_sec - start.tv_sec) * 1000 + (now.tv_nsec - start.tv_nsec) / 1_000_000)
                var pfd = pollfd(fd: socket.fd, events: Int16(POLLIN), revents: 0)
                if left <= 0 || poll(&pfd, 1, Int32(left)) <= 0 { throw Failure(description: "\(url): no complete answer within \(timeoutMillis) ms") }
                let n = recv(socket.fd, &buf, buf.count, 0)
                if n < 0 { throw Failure(description: "\(url): read failed: \(String(cString: strerror(errno)))") }
                if n == 0 { break }
                data += buf[0..<n]
                if data.count > 64 * 1024 * 1024 { throw Failure(description: "\(url): the answer is over 64 MiB; refused rather than cut short") }
            }
            let text = String(decoding: data, as: UTF8.self)
            guard let headerEnd = text.range(of: "\r\n\r\n") else { throw Failure(description: "\(url): no HTTP answer") }
            let status = text[..<headerEnd.lowerBound].split(separator: " ", maxSplits: 2).dropFirst().first.flatMap { Int($0) } ?? 0
            guard status == 200 else { throw Failure(description: "\(url): HTTP status \(status)") }
            return String(text[headerEnd.upperBound...])
        } catch let f as Failure {
            throw f
        } catch {
            throw Failure(description: "\(url): \(error)")
        }
    }
}
