import ArgumentParser
import Foundation
import InterposeKernel

/// A small HTTP/1.1 backend for demos and tests: answers every request with its name, counts the
/// requests it served (GET /count), keeps connections alive, and can be told to be slow or silent.
struct HTTPServe: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "http-serve",
        abstract: "Serve HTTP/1.1: every answer says 'served-by NAME'; GET /count returns how many requests were served.")

    @Option(help: "Port to listen on (IPv4 and IPv6).") var port: UInt16
    @Option(help: "Name put in each answer.") var name = "backend"
    @Option(help: "Delay every answer by this many milliseconds.") var delayMs = 0
    @Flag(help: "Read requests but never answer (a black-hole mirror).") var silent = false
    @Option(help: "Answer /stream with this many chunks...") var streamChunks = 20
    @Option(help: "...this many milliseconds apart.") var streamDelayMs = 100
    @Option(help: "Stop after this many seconds.") var seconds = 600
    @Option(help: "Create this file once listening.") var readyFile: String?
    @Option(help: "Answer every request with this file's content as the body (read again for each request), e.g. a list to fetch.") var bodyFile: String?

    func run() throws {
        let listeners = [try TCPSocket.listen(family: .v4, port: port), try TCPSocket.listen(family: .v6, port: port)]
        if let readyFile { _ = FileManager.default.createFile(atPath: readyFile, contents: Data("ready\n".utf8)) }
        let counter = Counter()
        let deadline = Date().addingTimeInterval(TimeInterval(seconds))
        let config = Config(name: name, delay: delayMs, silent: silent, chunks: streamChunks, chunkDelay: streamDelayMs, bodyFile: bodyFile)
        while Date() < deadline {
            for fd in try waitReadable(listeners.map(\.fd), timeoutMillis: 500) {
                guard let l = listeners.first(where: { $0.fd == fd }), let conn = try? l.accept() else { continue }
                let t = Thread { HTTPServe.serve(conn, config: config, counter: counter) }
                t.start()
            }
        }
    }

    final class Counter: @unchecked Sendable {
        private let lock = NSLock()
        private var n = 0
        func next() -> Int { lock.withLock { n += 1; return n } }
        var value: Int { lock.withLock { n } }
    }

    struct Config: Sendable { let name: String; let delay: Int; let silent: Bool; let chunks: Int; let chunkDelay: Int; var bodyFile: String? = nil }

    static func serve(_ conn: TCPSocket, config: Config, counter: Counter) {
        var reader = LineReader(socket: conn)
        var onThisConnection = 0
        while true {
            guard let requestLine = reader.line(), !requestLine.isEmpty else { return }
            var headers: [String: String] = [:]
            while let h = reader.line(), !h.isEmpty {
                if let c = h.firstIndex(of: ":") { headers[h[..<c].lowercased()] = h[h.index(after: c)...].trimmingCharacters(in: .whitespaces) }
            }
            if headers["expect"]?.lowercased() == "100-continue" { try? conn.write("HTTP/1.1 100 Continue\r\n\r\n") }
            var bodyBytes = 0
            if let len = headers["content-length"].flatMap(Int.init) { bodyBytes = reader.skip(len) }
            else if headers["transfer-encoding"]?.lowercased().contains("chunked") == true { bodyBytes = reader.skipChunked() }
            if config.silent { continue }
            let parts = requestLine.split(separator: " ")
            let path = parts.count > 1 ? String(parts[1]) : "/"
            if headers["upgrade"]?.lowercased() == "websocket" {
                try? conn.write("HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: Upgrade\r\n\r\n")
                reader.echoForever()
                return
            }
            if path.hasPrefix("/stream") {
                // A long chunked response, to check that a reload leaves it intact.
                _ = counter.next()
                do {
                    try conn.write("HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ntransfer-encoding: chunked\r\nx-served-by: \(config.name)\r\n\r\n")
                    for i in 0..<config.chunks {
                        let chunk = "served-by \(config.name) chunk \(i)\n"
                        try conn.write(String(chunk.utf8.count, radix: 16) + "\r\n" + chunk + "\r\n")
                        usleep(useconds_t(config.chunkDelay * 1000))
                    }
                    try conn.write("0\r\n\r\n")
                } catch { return }
                continue
            }
            let body: String
            if let file = config.bodyFile { body = (try? String(contentsOfFile: file, encoding: .utf8)) ?? "" }
            else if path == "/count" { body = "\(counter.value)\n" }
            else {
                let n = counter.next()
                onThisConnection += 1
                body = "served-by \(config.name) request \(n) path \(path) body-bytes \(bodyBytes) host \(headers["host"] ?? "-") user \(headers["end-user"] ?? "-") connection-request \(onThisConnection)\n"
            }
            if config.delay > 0 { usleep(useconds_t(config.delay * 1000)) }
            let close = headers["connection"]?.lowercased() == "close"
            let response = "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: \(body.utf8.count)\r\nx-served-by: \(config.name)\r\n\(close ? "connection: close\r\n" : "")\r\n\(body)"
            do { try conn.write(response) } catch { return }
            if close { return }
        }
    }
}

/// Buffered reads of CRLF lines and counted bodies from a blocking socket.
struct LineReader {
    let socket: TCPSocket
    var buffer: [UInt8] = []

    init(socket: TCPSocket) { self.socket = socket }

    mutating func fill() -> Bool {
        var chunk = [UInt8](repeating: 0, count: 16384)
        let n = recv(socket.fd, &chunk, chunk.count, 0)
        guard n > 0 else { return false }
        buffer += chunk[0..<n]
        return true
    }

    mutating func line() -> String? {
        while true {
            if let i = buffer.firstIndex(of: 10) {
                var l = Array(buffer[..<i])
                buffer.removeFirst(i + 1)
                if l.last == 13 { l.removeLast() }
                return String(decoding: l, as: UTF8.self)
            }
            guard fill() else { return nil }
        }
    }

    mutating func skip(_ count: Int) -> Int {
        var left = count
        while left > 0 {
            if buffer.isEmpty && !fill() { break }
            let take = min(left, buffer.count)
            buffer.removeFirst(take)
            left -= take
        }
        return count - left
    }

    mutating func skipChunked() -> Int {
        var total = 0
        while let sizeLine = line(), let size = Int(sizeLine.split(separator: ";").first ?? "", radix: 16) {
            if size == 0 { while let t = line(), !t.isEmpty {}; break }
            total += skip(size)
            _ = line()
        }
        return total
    }

    mutating func echoForever() {
        if !buffer.isEmpty { _ = try? socket.write(String(decoding: buffer, as: UTF8.self)); buffer.removeAll() }
        var chunk = [UInt8](repeating: 0, count: 16384)
        while true {
            let n = recv(socket.fd, &chunk, chunk.count, 0)
            guard n > 0 else { return }
            _ = chunk.withUnsafeBytes { send(socket.fd, $0.baseAddress, n, Int32(MSG_NOSIGNAL)) }
        }
    }
}
