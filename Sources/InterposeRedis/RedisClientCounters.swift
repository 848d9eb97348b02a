import Synchronization

/// Counters the proxy reads for its metrics. Written on the client's event loop, read from anywhere;
/// relaxed atomics are enough because each value is only ever a monotonic count.
public final class RedisClientCounters: Sendable {
    let commandsBox = Atomic<Int>(0)
    let failuresBox = Atomic<Int>(0)
    let circuitOpensBox = Atomic<Int>(0)
    let connectAttemptsBox = Atomic<Int>(0)
    let scriptReloadsBox = Atomic<Int>(0)

    init() {}

    /// Commands asked of the client (`send` calls, batch elements included).
    public var commands: Int { commandsBox.load(ordering: .relaxed) }
    /// Commands that ended with a `RedisClientError` (timeout, closed, refused, circuit open, backoff).
    public var failures: Int { failuresBox.load(ordering: .relaxed) }
    /// Times the circuit breaker went to open.
    public var circuitOpens: Int { circuitOpensBox.load(ordering: .relaxed) }
    /// TCP connects started.
    public var connectAttempts: Int { connectAttemptsBox.load(ordering: .relaxed) }
    /// SCRIPT LOADs sent because Redis answered NOSCRIPT (counted by `GlobalQuota`).
    public var scriptReloads: Int { scriptReloadsBox.load(ordering: .relaxed) }

}
