import Foundation
import InterposePolicy
import NIOCore
import NIOPosix
import Testing

@testable import InterposeRedis

extension RedisIntegration {
    @Suite struct GlobalQuotaTests {
        @Test func scriptShaIsTheOneRedisComputes() async throws {
            try await withRedis { server, group in
                let client = RedisClient.forTest(server, on: group.next())
                let loaded = try await client.send(["SCRIPT", "LOAD", GCRAScript.source]).get()
                #expect(loaded.string == GCRAScript.sha)
                try await client.close().get()
            }
        }

        /// limit 5 per 50 s, burst 4: T = 10 s, so nothing refills while the test runs, however busy the
        /// machine: 5 at once, then refused until one interval has passed.
        @Test func gcraAllowsBurstThenRefusesUntilOneIntervalPassed() async throws {
            try await withRedis { server, group in
                let client = RedisClient.forTest(server, on: group.next())
                let quota = GlobalQuota(client: client)
                let request = GlobalQuotaRequest(key: testKey("gcra"), limit: 5, period: 50, burst: 4)
                var remaining: [Int?] = []
                for _ in 0..<5 {
                    let answer = try await quota.take(request).get()
                    #expect(answer.allowed == true, "\(answer)")
                    remaining.append(answer.remaining)
                }
                #expect(remaining == [4, 3, 2, 1, 0])
                let refused = try await quota.take(request).get()
                #expect(refused.allowed == false, "\(refused)")
                let retryAfter = try #require(refused.retryAfter)
                #expect(retryAfter > 0 && retryAfter <= 10, "retryAfter \(retryAfter)")
                if case .decided(_, _, _, let reset) = refused { #expect(reset > 40 && reset <= 50, "reset \(reset)") }
                // The key holds one number and expires when the quota is whole again.
                let ttl = try await client.send(["PTTL", request.key]).get().int ?? -1
                #expect(ttl > 40_000 && ttl <= 50_000, "ttl \(ttl)")

                // Refill, with a short interval (T = 200 ms): once retryAfter has passed, one more is allowed.
                // Takes are repeated until one is refused: on a machine slow enough that a whole interval
                // passes between two takes, the second is rightly allowed, and the test needs a refusal.
                let fast = GlobalQuotaRequest(key: testKey("gcra-fast"), limit: 5, period: 1, burst: 0)
                var refusal: GlobalQuotaAnswer?
                for _ in 0..<20 where refusal == nil {
                    let answer = try await quota.take(fast).get()
                    if answer.allowed == false { refusal = answer }
                }
                let wait = try #require(refusal, "20 back-to-back takes at 5 per second were all allowed")
                let after = try #require(wait.retryAfter)
                #expect(after > 0 && after <= 0.2, "retryAfter \(after)")
                try await Task.sleep(for: .milliseconds(Int(after * 1000) + 20))
                #expect(try await quota.take(fast).get().allowed == true, "allowed again after retryAfter")
                try await client.close().get()
            }
        }

        @Test func noscriptReloadsOnceAndRetries() async throws {
            try await withRedis { server, group in
                let client = RedisClient.forTest(server, on: group.next())
                let quota = GlobalQuota(client: client)
                // T = 864 s: nothing refills during the test, so the remaining counts are exact.
                let request = GlobalQuotaRequest(key: testKey("noscript"), limit: 100, period: 86_400, burst: 99)
                #expect(try await quota.take(request).get().allowed == true)  // EVALSHA path, script now cached

                #expect(try await client.send(["SCRIPT", "FLUSH"]).get() == .simpleString("OK"))
                let before = client.counters.scriptReloads
                let answer = try await quota.take(request).get()
                #expect(answer.allowed == true, "\(answer)")
                #expect(client.counters.scriptReloads - before == 1)

                // A whole pipeline meeting NOSCRIPT shares one SCRIPT LOAD.
                #expect(try await client.send(["SCRIPT", "FLUSH"]).get() == .simpleString("OK"))
                let answers = try await quota.take(Array(repeating: request, count: 10)).get()
                #expect(answers.allSatisfy { $0.allowed == true }, "\(answers)")
                #expect(answers.compactMap(\.remaining) == (88...97).reversed().map { $0 })
                #expect(client.counters.scriptReloads - before == 2)
                try await client.close().get()
            }
        }

        @Test func twoClientsOnTwoEventLoopsShareOneQuota() async throws {
            try await withRedis { server, group in
                let other = MultiThreadedEventLoopGroup(numberOfThreads: 1)
                defer { other.shutdownGracefully { _ in } }
                let quotaA = GlobalQuota(client: RedisClient.forTest(server, on: group.next()))
                let quotaB = GlobalQuota(client: RedisClient.forTest(server, on: other.next()))
                let request = GlobalQuotaRequest(key: testKey("shared"), limit: 10, period: 86_400, burst: 9)
                let a = quotaA.take(Array(repeating: request, count: 10))
                let b = quotaB.take(Array(repeating: request, count: 10))
                let answers = try await a.get() + b.get()
                #expect(answers.allSatisfy { $0.failure == nil }, "\(answers)")
                #expect(answers.filter { $0.allowed == true }.count == 10)
                try await quotaA.client.close().get()
                try await quotaB.client.close().get()
            }
        }

        /// A Redis error (here the key holds a list) is a backend failure for failureMode, never a refusal.
        @Test func redisErrorReplyIsABackendFailure() async throws {
            try await withRedis { server, group in
                let client = RedisClient.forTest(server, on: group.next())
                let quota = GlobalQuota(client: client)
                let key = testKey("wrongtype")
                _ = try await client.send(["LPUSH", key, "x"]).get()
                let answer = try await quota.take(GlobalQuotaRequest(key: key, limit: 5, period: 1, burst: 0)).get()
                #expect(answer.failure?.contains("WRONGTYPE") == true, "\(answer)")
                try await client.close().get()
            }
        }
    }
}

@Suite struct GlobalQuotaWithoutRedisTests {
    /// limit 0 is decided here (nothing can ever be allowed); a bad period is a backend failure.
    @Test func degenerateRequestsAreAnsweredWithoutRedis() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let client = RedisClient(host: "127.0.0.1", port: 1, eventLoop: group.next())
        let quota = GlobalQuota(client: client)
        let zero = try await quota.take(GlobalQuotaRequest(key: "k", limit: 0, period: 60, burst: 0)).get()
        #expect(zero == .decided(allowed: false, remaining: 0, retryAfter: 60, reset: 60))
        let bad = try await quota.take(GlobalQuotaRequest(key: "k", limit: 1, period: 0, burst: 0)).get()
        #expect(bad.failure != nil)
        #expect(client.counters.commands == 0)
        try await client.close().get()
        try await group.shutdownGracefully()
    }

    @Test func evalshaArguments() {
        let request = GlobalQuotaRequest(key: "interpose:rl:{ns/p/r/v}", limit: 5, period: 1, burst: 4)
        guard case .valid(let t) = GCRAScript.validate(request) else { Issue.record("invalid"); return }
        #expect(t == 200_000)
        #expect(GCRAScript.evalsha(request, emissionMicros: t, units: 1) == ["EVALSHA", GCRAScript.sha, "1", "interpose:rl:{ns/p/r/v}", "200000.0", "4", "1"])
    }
}
