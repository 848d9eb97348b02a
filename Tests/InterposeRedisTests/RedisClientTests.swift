import NIOCore
import NIOPosix
import Testing

@testable import InterposeRedis

extension RedisIntegration {
    @Suite struct ClientTests {
        @Test func pingSetGetRoundTrips() async throws {
            try await withRedis { server, group in
                let client = RedisClient.forTest(server, on: group.next())
                #expect(try await client.send(["PING"]).get() == .simpleString("PONG"))
                #expect(try await client.send(["SET", "greeting", "hello world"]).get() == .simpleString("OK"))
                #expect(try await client.send(["GET", "greeting"]).get() == .bulk("hello world"))
                #expect(try await client.send(["GET", "no-such-key"]).get() == .bulkString(nil))
                #expect(try await client.send(["INCRBY", "n", "41"]).get() == .integer(41))
                // A RESP error is an answer, not a failed future.
                let wrong = try await client.send(["INCR", "greeting"]).get()
                guard case .error(let message) = wrong else { Issue.record("expected an error reply, got \(wrong)"); return }
                #expect(message.hasPrefix("ERR"))
                #expect(client.counters.connectAttempts == 1)
                #expect(client.counters.failures == 0)
                try await client.close().get()
                await #expect(throws: RedisClientError.clientClosed) { try await client.send(["PING"]).get() }
            }
        }

        @Test func thousandPipelinedCommandsAnswerInOrder() async throws {
            try await withRedis { server, group in
                let client = RedisClient.forTest(server, on: group.next())
                // Sent from outside the loop: each hops on in call order, all on one connection.
                let echoes = (0..<1000).map { client.send(["ECHO", "m\($0)"]) }
                let replies = try await EventLoopFuture.whenAllSucceed(echoes, on: client.eventLoop).get()
                #expect(replies.map { $0.string } == (0..<1000).map { "m\($0)" })

                // One batch, one flush: INCR answers 1...1000 in order.
                let batch = client.send(batch: Array(repeating: ["INCR", "counter"], count: 1000))
                let counts = try await EventLoopFuture.whenAllSucceed(batch, on: client.eventLoop).get()
                #expect(counts.map { $0.int } == (1...1000).map { $0 })
                #expect(client.counters.connectAttempts == 1)
                #expect(client.counters.commands == 2000)
                try await client.close().get()
            }
        }

        @Test func sendOnTheEventLoopRunsWithoutAHop() async throws {
            try await withRedis { server, group in
                let client = RedisClient.forTest(server, on: group.next())
                // On its loop, send enqueues before it returns (no hop through another task): the
                // command count has moved by the time send returns.
                let (before, after) = try await client.eventLoop.submit { () -> (Int, Int) in
                    let before = client.counters.commands
                    _ = client.send(["SET", "a", "1"])
                    return (before, client.counters.commands)
                }.get()
                #expect(after == before + 1, "send on the loop enqueued inline")
                let reply = try await client.eventLoop.flatSubmit { client.send(["GET", "a"]) }.get()
                #expect(reply == .bulk("1"))
                try await client.close().get()
            }
        }
    }
}
