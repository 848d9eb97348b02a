import Synchronization

/// A token bucket refilled in whole intervals, as Envoy's local rate limit does (`tokens_per_fill`
/// every `fill_interval`, up to `max_tokens`). Filling in steps rather than continuously is what
/// makes "N per second" mean what users test: the N+1th flow within one interval is refused
/// however the N before it were spread. Time is passed in (monotonic nanoseconds), so tests drive it.
public struct TokenBucket: Sendable, Equatable {
    public private(set) var tokens: Double
    /// When the current interval began; fills happen at whole intervals after it.
    public private(set) var lastFill: UInt64

    /// A new bucket is full: a source's first burst is allowed.
    public init(burst: Double, now: UInt64) {
        tokens = burst
        lastFill = now
    }

    /// Refills for the whole intervals since the last fill, then takes one token if there is one.
    public mutating func take(now: UInt64, perFill: Double, burst: Double, interval: UInt64) -> Bool {
        refill(now: now, perFill: perFill, burst: burst, interval: interval)
        guard tokens >= 1 else { return false }
        tokens -= 1
        return true
    }

    public mutating func refill(now: UInt64, perFill: Double, burst: Double, interval: UInt64) {
        guard now > lastFill, interval > 0 else { return } // time going backwards adds nothing
        let fills = (now - lastFill) / interval
        guard fills > 0 else { return }
        tokens = min(burst, tokens + Double(fills) * perFill)
        lastFill += fills * interval
    }
}

/// One token bucket per source address for one rule. Shared by every queue thread, so locked.
public final class SourceRateLimiter: Sendable {
    /// Tokens added per interval (newFlowsPerSecond x the interval in seconds).
    public let perFill: Double
    public let burst: Double
    public let interval: UInt64
    /// Sources beyond this are pruned of full (idle) buckets, so a scan cannot grow memory without end.
    public let maxSources: Int
    /// The buckets, and when they were last pruned (a scan: at most once per fill interval).
    private let buckets = Mutex<(map: [FlowAddress: TokenBucket], pruned: UInt64)>(([:], 0))

    public init(rate: Double, burst: Double, interval: Double = 1, maxSources: Int = 65_536) {
        self.perFill = rate * interval
        self.burst = burst
        self.interval = UInt64(interval * 1e9)
        self.maxSources = maxSources
    }

    public func take(_ source: FlowAddress, now: UInt64) -> Bool {
        let (perFill, burst, interval, maxSources) = (self.perFill, self.burst, self.interval, self.maxSources)
        return buckets.withLock { s in
            if s.map[source] == nil && s.map.count >= maxSources && now &- s.pruned >= interval {
                s.pruned = now
                s.map = s.map.filter { _, b in
                    var b = b
                    b.refill(now: now, perFill: perFill, burst: burst, interval: interval)
                    return b.tokens < burst
                }
            }
            // Every source is busy: allow this one without remembering it rather than grow without end
            // under a scan (as the policy engine's LocalLimiter does).
            if s.map[source] == nil && s.map.count >= maxSources { return true }
            var bucket = s.map[source] ?? TokenBucket(burst: burst, now: now)
            let allowed = bucket.take(now: now, perFill: perFill, burst: burst, interval: interval)
            s.map[source] = bucket
            return allowed
        }
    }

    public var sourceCount: Int { buckets.withLock { $0.map.count } }
}
