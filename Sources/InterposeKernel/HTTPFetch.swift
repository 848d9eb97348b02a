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
            while data.count < 64 * 1024 * 1024 {
                var pfd = pollfd(fd: socket.fd, events: Int16(POLLIN), revents: 0)
                if poll(&pfd, 1, timeoutMillis) <= 0 { throw Failure(description: "\(url): timed out after \(timeoutMillis) ms") }
                let n = recv(socket.fd, &buf, buf.count, 0)
                if n < 0 { throw Failure(description: "\(url): read failed: \(String(cString: strerror(errno)))") }
                if n == 0 { break }
                data += buf[0..<n]
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
