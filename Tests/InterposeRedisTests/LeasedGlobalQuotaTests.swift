import InterposePolicy
import NIOCore
import NIOPosix
import Testing

@testable import InterposeRedis

extension RedisIntegration {
    @Suite struct LeasedGlobalQuotaTests {
        /// Loads the script so that command counts below are EVALSHAs only.
        private func preload(_ client: RedisClient) async throws {
            _ = try await client.send(["SCRIPT", "LOAD", GCRAScript.source]).get()
        }

        @Test func leasesCutRoundTripsAndNeverOverAdmit() async throws {
            try await withRedis { server, group in
                let client = RedisClient.forTest(server, on: group.next())
                try await preload(client)
                let leased = LeasedGlobalQuota(quota: GlobalQuota(client: client), batch: 4, maxHold: .seconds(10))
                let request = GlobalQuotaRequest(key: testKey("lease"), limit: 10, period: 86_400, burst: 9)
                let before = client.counters.commands
                var answers: [GlobalQuotaAnswer] = []
                for _ in 0..<11 { answers.append(try await leased.take(request).get()) }
                #expect(answers.prefix(10).allSatisfy { $0.allowed == true }, "\(answers)")
                #expect(answers[10].allowed == false)
                #expect((answers[10].retryAfter ?? 0) > 0)
                // Grants of 4, 4, then the last 2, then a refusal: 4 round trips for 11 takes.
                #expect(client.counters.commands - before == 4)
                #expect(answers.prefix(10).compactMap(\.remaining) == (0...9).reversed().map { $0 })
                try await client.close().get()
            }
        }

        @Test func concurrentTakesShareOneFetch() async throws {
            try await withRedis { server, group in
                let client = RedisClient.forTest(server, on: group.next())
                try await preload(client)
                let leased = LeasedGlobalQuota(quota: GlobalQuota(client: client), batch: 4, maxHold: .seconds(10))
                let request = GlobalQuotaRequest(key: testKey("concurrent"), limit: 100, period: 86_400, burst: 99)
                let before = client.counters.commands
                let answers = try await client.eventLoop.flatSubmit {
                    EventLoopFuture.whenAllSucceed((0..<6).map { _ in leased.take(request) }, on: client.eventLoop)
                }.get()
                #expect(answers.allSatisfy { $0.allowed == true }, "\(answers)")
                // One fetch of 4 for the first six waiters, then one more (of max(4, 2)) for the last two.
                #expect(client.counters.commands - before == 2)
                let held = try await client.eventLoop.submit { leased.heldUnits(request.key) }.get()
                #expect(held == 2)
                try await client.close().get()
            }
        }

        /// Two loops leasing from one key: what is admitted plus what is still held is exactly the limit.
        @Test func twoLeasingClientsStayWithinTheLimit() async throws {
            try await withRedis { server, group in
                let other = MultiThreadedEventLoopGroup(numberOfThreads: 1)
                defer { other.shutdownGracefully { _ in } }
                let a = LeasedGlobalQuota(quota: GlobalQuota(client: RedisClient.forTest(server, on: group.next())), batch: 3, maxHold: .seconds(10))
                let b = LeasedGlobalQuota(quota: GlobalQuota(client: RedisClient.forTest(server, on: other.next())), batch: 3, maxHold: .seconds(10))
                try await preload(a.quota.client)
                let request = GlobalQuotaRequest(key: testKey("lease-shared"), limit: 10, period: 86_400, burst: 9)
                async let fromA = a.eventLoop.flatSubmit {
                    EventLoopFuture.whenAllSucceed((0..<8).map { _ in a.take(request) }, on: a.eventLoop)
                }.get()
                async let fromB = b.eventLoop.flatSubmit {
                    EventLoopFuture.whenAllSucceed((0..<8).map { _ in b.take(request) }, on: b.eventLoop)
                }.get()
                let answers = try await fromA + fromB
                #expect(answers.allSatisfy { $0.failure == nil }, "\(answers)")
                let allowed = answers.filter { $0.allowed == true }.count
                let heldA = try await a.eventLoop.submit { a.heldUnits(request.key) }.get()
                let heldB = try await b.eventLoop.submit { b.heldUnits(request.key) }.get()
                #expect(allowed + heldA + heldB == 10)
                #expect(allowed >= 10 - 2 * (3 - 1))
                try await a.quota.client.close().get()
                try await b.quota.client.close().get()
            }
        }

        @Test func expiredLeaseGoesBackToRedis() async throws {
            try await withRedis { server, group in
                let client = RedisClient.forTest(server, on: group.next())
                try await preload(client)
                let leased = LeasedGlobalQuota(quota: GlobalQuota(client: client), batch: 4, maxHold: .milliseconds(30))
                let request = GlobalQuotaRequest(key: testKey("expiry"), limit: 100, period: 86_400, burst: 99)
                let before = client.counters.commands
                #expect(try await leased.take(request).get().allowed == true)
                try await Task.sleep(for: .milliseconds(60))
                #expect(try await leased.take(request).get().allowed == true)
                #expect(client.counters.commands - before == 2)
                try await client.close().get()
            }
        }

        @Test func backendFailureReachesEveryWaiter() async throws {
            try await withRedis { server, group in
                let client = RedisClient.forTest(server, on: group.next())
                let leased = LeasedGlobalQuota(quota: GlobalQuota(client: client), batch: 4)
                let key = testKey("lease-wrongtype")
                _ = try await client.send(["LPUSH", key, "x"]).get()
                let request = GlobalQuotaRequest(key: key, limit: 10, period: 1, burst: 9)
                let answers = try await client.eventLoop.flatSubmit {
                    EventLoopFuture.whenAllSucceed((0..<3).map { _ in leased.take(request) }, on: client.eventLoop)
                }.get()
                #expect(answers.allSatisfy { $0.failure?.contains("WRONGTYPE") == true }, "\(answers)")
                try await client.close().get()
            }
        }
    }
}
