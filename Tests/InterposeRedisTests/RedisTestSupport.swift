import InterposePolicy
import InterposeRedis
import NIOCore
import NIOPosix
import Testing

/// The Redis tests run one at a time: several of them measure how fast a failure is reported, and
/// on two CPUs other tests' Redis traffic would only add noise. Each test has its own server.
@Suite(.serialized) struct RedisIntegration {}

/// Starts a private Redis and a one-thread event loop group, hands them to `body`, and tears both
/// down afterwards, also when `body` throws. Returns without running `body` when Redis is missing.
func withRedis(
    _ body: (RedisServer, EventLoopGroup) async throws -> Void
) async throws {
    guard let server = try RedisServer.start() else { return }
    defer { server.stop() }
    let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
    do {
        try await body(server, group)
    } catch {
        try? await group.shutdownGracefully()
        throw error
    }
    try await group.shutdownGracefully()
}

extension RedisClient {
    /// A client for tests: timeouts generous enough for a busy two-CPU machine unless a test is about them.
    static func forTest(
        _ server: RedisServer, on loop: EventLoop, commandTimeout: TimeAmount = .seconds(2),
        circuitCooldown: TimeAmount = .milliseconds(500)
    ) -> RedisClient {
        RedisClient(
            host: "127.0.0.1", port: server.port, eventLoop: loop, connectTimeout: .milliseconds(500),
            commandTimeout: commandTimeout, circuitCooldown: circuitCooldown
        )
    }
}

extension GlobalQuotaAnswer {
    var allowed: Bool? {
        if case .decided(let allowed, _, _, _) = self { return allowed }
        return nil
    }
    var remaining: Int? {
        if case .decided(_, let remaining, _, _) = self { return remaining }
        return nil
    }
    var retryAfter: Double? {
        if case .decided(_, _, let retryAfter, _) = self { return retryAfter }
        return nil
    }
    var failure: String? {
        if case .backendFailed(let reason) = self { return reason }
        return nil
    }
}

/// A key unique to one test, hash-tagged as the policy engine makes them.
func testKey(_ name: String) -> String { "interpose:rl:{test/\(name)/\(UInt32.random(in: 0...UInt32.max))}" }
