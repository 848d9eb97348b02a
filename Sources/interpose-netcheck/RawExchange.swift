import ArgumentParser
import Foundation
import InterposeKernel

/// Sends raw bytes and prints what comes back: for malformed requests and protocol upgrades.
struct Send: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Send raw bytes (\\r \\n escapes allowed) and print the first line of the answer.")
    @Argument(help: "host:port or [v6]:port") var address: String
    @Option(help: "The bytes to send; \\r and \\n are turned into CR and LF.") var data: String
    @Option(help: "After the answer, send this too and print the next answer's first line (repeatable).") var then: [String] = []
    @Option(help: "Timeout in milliseconds.") var timeoutMs: Int32 = 3000

    func run() throws {
        guard let addr = SocketEndpoint.parse(address) else { throw ValidationError("'\(address)' is not host:port") }
        let s = try TCPSocket.connect(to: addr, timeoutMillis: timeoutMs)
        func unescape(_ t: String) -> String { t.replacingOccurrences(of: "\\r", with: "\r").replacingOccurrences(of: "\\n", with: "\n") }
        try s.write(unescape(data))
        var reader = LineReader(socket: s)
        guard let first = reader.line() else { throw ExitCode(1) }
        print(first)
        // Skip the rest of the head so the next read starts at the body or the next message.
        while let h = reader.line(), !h.isEmpty {}
        for next in then {
            try s.write(unescape(next))
            while reader.buffer.isEmpty { if !reader.fill() { throw ExitCode(1) } }
            print(String(decoding: reader.buffer, as: UTF8.self))
            reader.buffer.removeAll()
        }
    }
}
