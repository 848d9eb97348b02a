import InterposePolicy
import NIOCore
import NIOPosix
import Testing

@testable import InterposeRedis

extension RedisIntegration {
    /// What the proxy sees when Redis dies or hangs: fast `.backendFailed`, then an open circuit that
    /// fails without touching the network, then recovery once Redis is back.
    @Suite struct FailureTests {
        static let commandTimeout = TimeAmount.milliseconds(5)
        /// "Within roughly the command timeout": a bound loose enough for a loaded machine.
        static let fastBound = Duration.milliseconds(10 * 5)

        @Test func redisKilledThenCircuitOpensThenRecovers() async throws {
            try await withRedis { server, group in
                let client = RedisClient(host: "127.0.0.1", port: server.port, eventLoop: group.next())
                let quota = GlobalQuota(client: client)
                let request = GlobalQuotaRequest(key: testKey("killed"), limit: 1000, period: 1, burst: 999)
                // The first take may meet NOSCRIPT on the fresh server; give it a few tries at 5 ms.
                var warm: GlobalQuotaAnswer = .backendFailed(reason: "not tried")
                for _ in 0..<20 where warm.allowed != true {
                    warm = try await quota.take(request).get()
                    if warm.allowed != true { try await Task.sleep(for: .milliseconds(30)) }
                }
                #expect(warm.allowed == true, "\(warm)")

                server.stop()
                let clock = ContinuousClock()
                let started = clock.now
                let first = try await quota.take(request).get()
                #expect(clock.now - started < Self.fastBound)
                #expect(first.failure != nil, "\(first)")

                // Keep asking (as traffic would) until the breaker has seen enough failures.
                var reason = first.failure ?? ""
                let deadline = clock.now + .seconds(3)
                while !reason.contains("circuit open") && clock.now < deadline {
                    try await Task.sleep(for: .milliseconds(5))
                    let answer = try await quota.take(request).get()
                    reason = answer.failure ?? "decided: \(answer)"
                }
                #expect(reason.contains("circuit open"), "last reason: \(reason)")
                #expect(client.counters.circuitOpens == 1)

                // Open: immediate failures, no connect attempt.
                let attempts = client.counters.connectAttempts
                let openStarted = clock.now
                for _ in 0..<50 {
                    let answer = try await quota.take(request).get()
                    #expect(answer.failure?.contains("circuit open") == true, "\(answer)")
                }
                #expect(clock.now - openStarted < Self.fastBound)
                #expect(client.counters.connectAttempts == attempts)

                // Back on the same port: after the cooldown a probe gets through and Redis decides again
                // (its script cache is empty, so this also goes through NOSCRIPT and SCRIPT LOAD).
                try server.launch()
                var back: GlobalQuotaAnswer = .backendFailed(reason: "not tried")
                let recoverBy = clock.now + .seconds(5)
                while back.allowed != true && clock.now < recoverBy {
                    try await Task.sleep(for: .milliseconds(20))
                    back = try await quota.take(request).get()
                }
                #expect(back.allowed == true, "\(back)")
                #expect(try await client.isCircuitOpen.get() == false)
                try await client.close().get()
            }
        }

        /// A hung Redis (SIGSTOP: the kernel still accepts, nothing answers): every command in flight
        /// fails with a timeout, the connection is dropped, and a fresh one works once Redis is back.
        @Test func hungRedisTimesOutEverythingInFlight() async throws {
            try await withRedis { server, group in
                let client = RedisClient(host: "127.0.0.1", port: server.port, eventLoop: group.next(), commandTimeout: Self.commandTimeout)
                let quota = GlobalQuota(client: client)
                let request = GlobalQuotaRequest(key: testKey("hung"), limit: 1000, period: 1, burst: 999)
                // Connect and load the script with a patient client first, then use the 5 ms one.
                let patient = RedisClient.forTest(server, on: group.next())
                _ = try await patient.send(["SCRIPT", "LOAD", GCRAScript.source]).get()
                try await patient.close().get()
                var warm: GlobalQuotaAnswer = .backendFailed(reason: "not tried")
                for _ in 0..<20 where warm.allowed != true {
                    warm = try await quota.take(request).get()
                    if warm.allowed != true { try await Task.sleep(for: .milliseconds(30)) }
                }
                #expect(warm.allowed == true, "\(warm)")

                server.freeze(true)
                defer { server.freeze(false) }
                let clock = ContinuousClock()
                let started = clock.now
                let answers = try await quota.take(Array(repeating: request, count: 3)).get()
                #expect(clock.now - started < Self.fastBound)
                for answer in answers { #expect(answer.failure == "redis command timeout", "\(answer)") }
                // The poisoned connection is gone: the next command waits out the backoff or, if the
                // backoff already passed on a slow machine, goes out on a new connection.
                let attempts = client.counters.connectAttempts
                let next = try await quota.take(request).get()
                if next.failure != "redis reconnect backoff" {
                    #expect(client.counters.connectAttempts == attempts + 1, "\(next)")
                }

                server.freeze(false)
                var back: GlobalQuotaAnswer = .backendFailed(reason: "not tried")
                let recoverBy = clock.now + .seconds(5)
                while back.allowed != true && clock.now < recoverBy {
                    try await Task.sleep(for: .milliseconds(20))
                    back = try await quota.take(request).get()
                }
                #expect(back.allowed == true, "\(back)")
                try await client.close().get()
            }
        }
    }
}
