import ArgumentParser
import Foundation
import InterposeKernel

/// Sends HTTP/1.1 requests over one keep-alive connection and tallies who answered:
/// the demo's and tests' client (the long-connection case from the talk).
struct HTTPGet: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "http-get",
        abstract: "Send COUNT requests over one keep-alive connection and print a tally of 'served-by' answers and status codes.")

    @Argument(help: "host:port or [v6]:port to connect to.") var address: String
    @Option(help: "Path to request.") var path = "/"
    @Option(help: "Host header (default: the address).") var host: String?
    @Option(name: [.customShort("H"), .customLong("header")], help: "Extra header 'name: value' (repeatable).") var headers: [String] = []
    @Option(help: "Number of requests.") var count = 1
    @Option(help: "Request method.") var method = "GET"
    @Option(help: "Request body size in bytes (sent with content-length).") var bodyBytes = 0
    @Flag(help: "Print each response's first body line.") var verbose = false
    @Flag(help: "Print how many body lines each response had.") var bodyLines = false
    @Option(help: "Timeout per response in milliseconds.") var timeoutMs: Int32 = 5000

    func run() throws {
        guard let addr = SocketEndpoint.parse(address) else { throw ValidationError("'\(address)' is not host:port") }
        var conn = try TCPSocket.connect(to: addr, timeoutMillis: timeoutMs)
        var reader = ResponseReader(socket: conn)
        var tally: [String: Int] = [:]
        let extra = headers.map { "\($0)\r\n" }.joined()
        let body = String(repeating: "x", count: bodyBytes)
        for _ in 0..<count {
            var request = "\(method) \(path) HTTP/1.1\r\nhost: \(host ?? address)\r\n\(extra)"
            if bodyBytes > 0 || method == "POST" || method == "PUT" { request += "content-length: \(bodyBytes)\r\n" }
            request += "\r\n" + body
            do { try conn.write(request) } catch {
                tally["error: write failed", default: 0] += 1
                break
            }
            guard let (status, headers, text) = reader.read(timeoutMillis: timeoutMs) else {
                tally["error: no response", default: 0] += 1
                break
            }
            let who = text.split(separator: " ").dropFirst().first.map(String.init).flatMap { text.hasPrefix("served-by") ? $0 : nil }
            let key = "\(status) \(who ?? (headers["x-envoy-response-flags"].map { "flag=\($0)" } ?? "-"))"
            tally[key, default: 0] += 1
            if verbose { print("\(status) \(text.split(separator: "\n").first ?? "")") }
            if bodyLines { print("body-lines \(text.split(separator: "\n").count)") }
            if headers["connection"]?.lowercased() == "close" {
                conn = try TCPSocket.connect(to: addr, timeoutMillis: timeoutMs)
                reader = ResponseReader(socket: conn)
            }
        }
        for (k, v) in tally.sorted(by: { $0.key < $1.key }) { print("\(v) \(k)") }
    }
}

/// Reads one HTTP/1.1 response (content-length or chunked) from a blocking socket.
struct ResponseReader {
    var lines: LineReader
    init(socket: TCPSocket) { lines = LineReader(socket: socket) }

    mutating func read(timeoutMillis: Int32) -> (Int, [String: String], String)? {
        guard (try? waitReadable([lines.socket.fd], timeoutMillis: timeoutMillis))?.isEmpty == false || !lines.buffer.isEmpty else { return nil }
        var status = 0
        var headers: [String: String] = [:]
        repeat {
            guard let statusLine = lines.line() else { return nil }
            status = Int(statusLine.split(separator: " ").dropFirst().first ?? "") ?? 0
            headers = [:]
            while let h = lines.line(), !h.isEmpty {
                if let c = h.firstIndex(of: ":") { headers[h[..<c].lowercased()] = h[h.index(after: c)...].trimmingCharacters(in: .whitespaces) }
            }
        } while status >= 100 && status < 200 && status != 101
        var body: [UInt8] = []
        if let len = headers["content-length"].flatMap(Int.init) {
            while lines.buffer.count < len { if !lines.fill() { break } }
            body = Array(lines.buffer.prefix(len))
            lines.buffer.removeFirst(min(len, lines.buffer.count))
        } else if headers["transfer-encoding"]?.lowercased().contains("chunked") == true {
            while let sizeLine = lines.line(), let size = Int(sizeLine.split(separator: ";").first ?? "", radix: 16) {
                if size == 0 { while let t = lines.line(), !t.isEmpty {}; break }
                while lines.buffer.count < size { if !lines.fill() { break } }
                body += lines.buffer.prefix(size)
                lines.buffer.removeFirst(min(size, lines.buffer.count))
                _ = lines.line()
            }
        }
        return (status, headers, String(decoding: body, as: UTF8.self))
    }
}
