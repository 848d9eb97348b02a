import ArgumentParser
import Foundation
import InterposeKernel
import InterposeRouting

/// A tiny listener and dialer that show where a connection arrived and where it was headed.
/// The demo and the namespace tests use it on both ends of captured connections.
@main
struct NetCheck: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "interpose-netcheck",
        abstract: "Listen or dial to show where captured connections arrive and their original destination.",
        subcommands: [Listen.self, Dial.self, HTTPServe.self, HTTPGet.self, Send.self]
    )
}

struct Listen: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Answer each connection (and datagram) with one line: name, local and peer address, original destination.",
        discussion: "The original destination is SO_ORIGINAL_DST (REDIRECT), the local address with --transparent (TPROXY), or 'none'.")

    @Option(name: .customLong("port"), help: "TCP port to listen on (IPv4 and IPv6); repeat for several.") var ports: [UInt16] = []
    @Option(name: .customLong("udp-port"), help: "UDP port to answer on; repeat for several.") var udpPorts: [UInt16] = []
    @Option(help: "Name reported in each answer.") var name = "listener"
    @Flag(help: "Set IP_TRANSPARENT so a TPROXY rule can hand this socket connections.") var transparent = false
    @Flag(name: .customLong("no-ipv6"), help: "Listen on IPv4 only.") var noIPv6 = false
    @Option(help: "Stop after this many seconds (a bound for tests and demos).") var seconds = 600
    @Option(help: "Create this file once listening.") var readyFile: String?

    func validate() throws {
        if ports.isEmpty && udpPorts.isEmpty { throw ValidationError("give at least one --port or --udp-port") }
    }

    func run() throws {
        var tcp: [Int32: TCPSocket] = [:]
        var udp: [Int32: UDPSocket] = [:]
        let families: [SocketEndpoint.Family] = noIPv6 ? [.v4] : [.v4, .v6]
        for port in ports {
            for f in families { let s = try TCPSocket.listen(family: f, port: port, transparent: transparent); tcp[s.fd] = s }
        }
        for port in udpPorts {
            for f in families { let s = try UDPSocket.bind(family: f, port: port); udp[s.fd] = s }
        }
        if let readyFile { _ = FileManager.default.createFile(atPath: readyFile, contents: Data("ready\n".utf8)) }
        let deadline = Date().addingTimeInterval(TimeInterval(seconds))
        while Date() < deadline {
            for fd in try waitReadable(Array(tcp.keys) + Array(udp.keys), timeoutMillis: 500) {
                if let listener = tcp[fd] { answer(try listener.accept()) }
                if let socket = udp[fd] {
                    try? socket.answerOne { sender in "name=\(name) proto=udp peer=\(sender)\n" }
                }
            }
        }
    }

    func answer(_ conn: TCPSocket) {
        let local = (try? conn.localAddress().description) ?? "?"
        let peer = (try? conn.peerAddress().description) ?? "?"
        let original = transparent ? local : ((try? conn.originalDestination().description) ?? "none")
        let line = "name=\(name) local=\(local) peer=\(peer) original=\(original)\n"
        try? conn.write(line)
        FileHandle.standardOutput.write(Data(line.utf8))
    }
}

struct Dial: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Connect to ADDRESS (host:port or [v6]:port) and print the line it answers.")

    @Argument(help: "host:port or [ipv6]:port") var address: String
    @Option(help: "Bind to this source address (host:port, port 0 for any) before connecting.") var source: String?
    @Flag(help: "Send one UDP datagram instead and print the answer.") var udp = false
    @Option(help: "First send a TLS ClientHello naming this server (SNI), then print the answer.") var tlsSni: String?
    @Option(help: "Connect and read timeout in milliseconds.") var timeoutMs: Int32 = 3000

    func run() throws {
        guard let addr = SocketEndpoint.parse(address) else { throw ValidationError("'\(address)' is not host:port or [ipv6]:port") }
        var from: SocketEndpoint? = nil
        if let source {
            guard let s = SocketEndpoint.parse(source) else { throw ValidationError("--source: '\(source)' is not host:port or [ipv6]:port") }
            from = s
        }
        do {
            if udp {
                print(try UDPSocket.exchange(with: addr, payload: "interpose-netcheck\n", timeoutMillis: timeoutMs))
            } else {
                let s = try TCPSocket.connect(to: addr, from: from, timeoutMillis: timeoutMs)
                if let tlsSni { try s.write(bytes: TLSClientHello.make(serverName: tlsSni)) }
                print(try s.readLine(timeoutMillis: timeoutMs))
            }
        } catch let e as SystemError {
            FileHandle.standardError.write(Data("dial \(address): \(e)\n".utf8))
            throw ExitCode(e.errno == ETIMEDOUT ? 2 : 1)
        }
    }
}
