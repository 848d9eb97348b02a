import Foundation
import InterposeKernel
import Testing

/// A private redis-server on a free loopback port, killed by `stop()` (call it in a `defer`) and,
/// as a safety net, when the object goes away.
final class RedisServer: @unchecked Sendable {
    /// Found on PATH, as the integration tests find it (Debian installs it in /usr/bin).
    static let path = ProcessCommandRunner().which("redis-server") ?? "/usr/bin/redis-server"
    let port: Int
    private var pid: pid_t?

    /// Starts one; nil (test skipped, reason printed) when redis-server is not installed, except
    /// under CI or as root, where a missing server is a failure.
    static func start(sourceLocation: SourceLocation = #_sourceLocation) throws -> RedisServer? {
        guard FileManager.default.isExecutableFile(atPath: path) else {
            let why = "redis-server not found at \(path) (Debian package redis-server)"
            // As root (CI runs as root, and the test script installs it) a missing server is a failure.
            if ProcessInfo.processInfo.environment["CI"] != nil || geteuid() == 0 {
                Issue.record(Comment(rawValue: why + "; CI must have it"), sourceLocation: sourceLocation)
            } else {
                print("skipping Redis test: \(why)")
            }
            return nil
        }
        let server = RedisServer(port: try freePort())
        try server.launch()
        return server
    }

    private init(port: Int) { self.port = port }

    deinit { stop() }

    /// (Re)starts the server on the same port and waits until it accepts connections.
    func launch() throws {
        let argv = [Self.path, "--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                    "--daemonize", "no", "--loglevel", "warning"]
        pid = try Subprocess.spawn(path: Self.path, argv: argv, stdin: Subprocess.devNull, stdout: Subprocess.devNull, stderr: Subprocess.devNull)
        let endpoint = SocketEndpoint(family: .v4, host: "127.0.0.1", port: UInt16(port))
        for _ in 0..<300 {
            if (try? TCPSocket.connect(to: endpoint, timeoutMillis: 100)) != nil { return }
            usleep(10_000)
        }
        stop()
        throw RedisServerError(message: "redis-server did not listen on port \(port) within 3 s")
    }

    /// Kills the server (SIGKILL: like a crash, no goodbye on the connections) and reaps it.
    func stop() {
        guard let pid else { return }
        kill(pid, SIGKILL)
        _ = Subprocess.wait(pid)
        self.pid = nil
    }

    /// Freezes (SIGSTOP) or thaws (SIGCONT) the server: connections stay up, replies stop.
    func freeze(_ frozen: Bool) {
        guard let pid else { return }
        kill(pid, frozen ? SIGSTOP : SIGCONT)
    }

    /// A port the kernel just handed out, free again once the probe socket closes.
    private static func freePort() throws -> Int {
        let probe = try TCPSocket.listen(family: .v4, port: 0)
        return Int(try probe.localAddress().port)
    }
}

struct RedisServerError: Error, CustomStringConvertible {
    var message: String
    var description: String { message }
}
