import Synchronization

/// A rate as the generic cell rate algorithm sees it: one request every `interval` (T = period / limit),
/// with `tolerance` (burst x T) of early arrival allowed, so `burst + 1` requests may come at once.
/// The Redis script of Global limits does the same arithmetic (in microseconds, on Redis' clock).
public struct GCRALimit: Sendable, Equatable, CustomStringConvertible {
    public let limit: Int
    /// Seconds.
    public let period: Double
    public let burst: Int
    /// T in nanoseconds; 0 when limit is 0 (nothing is ever allowed).
    public let interval: UInt64
    /// burst x T in nanoseconds.
    public let tolerance: UInt64

    public init(limit: Int, period: Double, burst: Int) {
        self.limit = max(0, limit)
        self.period = period
        self.burst = max(0, burst)
        if limit > 0 {
            interval = UInt64((period * 1e9 / Double(limit)).rounded())
        } else {
            interval = 0
        }
        tolerance = interval.multipliedReportingOverflow(by: UInt64(self.burst)).overflow ? UInt64.max / 2 : interval * UInt64(self.burst)
    }

    public var description: String { "\(limit) per \(period.formattedSeconds) (burst \(burst))" }
}

/// One GCRA decision.
public struct GCRADecision: Sendable, Equatable {
    public var allowed: Bool
    /// Requests still allowed right now after this one.
    public var remaining: Int
    /// Nanoseconds until one more request is allowed (0 when this one was allowed).
    public var retryAfter: UInt64
    /// Nanoseconds until the quota is whole again.
    public var reset: UInt64
    /// The theoretical arrival time to store (unchanged when refused).
    public var tat: UInt64

    public func status(_ limit: GCRALimit) -> RateLimitStatus {
        RateLimitStatus(limit: limit.limit, remaining: remaining, reset: Double(reset) / 1e9, retryAfter: Double(retryAfter) / 1e9, period: limit.period)
    }
}

public enum GCRA {
    /// Decides one request at `now` (monotonic nanoseconds) against the stored theoretical arrival time
    /// (nil: never seen, the quota is whole).
    ///
    ///     tat = max(stored, now)
    ///     refused  when tat - now > tolerance:  retryAfter = tat - tolerance - now, reset = tat - now
    ///     allowed  otherwise:                   new tat = tat + T, reset = new tat - now,
    ///                                           remaining = (tolerance + T - reset) / T
    public static func decide(tat stored: UInt64?, now: UInt64, limit: GCRALimit) -> GCRADecision {
        let period = UInt64(limit.period * 1e9)
        guard limit.interval > 0 else {
            return GCRADecision(allowed: false, remaining: 0, retryAfter: period, reset: period, tat: stored ?? now)
        }
        let tat = max(stored ?? now, now)
        let ahead = tat - now
        if ahead > limit.tolerance {
            return GCRADecision(allowed: false, remaining: 0, retryAfter: ahead - limit.tolerance, reset: ahead, tat: tat)
        }
        let newTAT = tat + limit.interval
        let reset = newTAT - now
        let remaining = Int((limit.tolerance + limit.interval - reset) / limit.interval)
        return GCRADecision(allowed: true, remaining: remaining, retryAfter: 0, reset: reset, tat: newTAT)
    }
}

/// GCRA state (theoretical arrival times) per descriptor value of one policy, shared by every event loop,
/// so locked. Keys whose quota is whole again are pruned when the map is full, so a scan of values cannot
/// grow memory without end.
final class LocalLimiter: Sendable {
    let maxKeys: Int
    /// The map, and when it was last pruned: pruning a full map scans it, so it happens at most once a
    /// second, not for every new key of a flood (which would hold every event loop's lock).
    private let state = Mutex<(map: [String: UInt64], pruned: UInt64)>(([:], 0))

    init(maxKeys: Int = 65_536) { self.maxKeys = maxKeys }

    func take(_ key: String, limit: GCRALimit, now: UInt64) -> GCRADecision {
        let maxKeys = self.maxKeys
        return state.withLock { s in
            // One hash per request: the stored value is updated in place through its index.
            if let i = s.map.index(forKey: key) {
                let d = GCRA.decide(tat: s.map.values[i], now: now, limit: limit)
                if d.allowed { s.map.values[i] = d.tat }
                return d
            }
            let d = GCRA.decide(tat: nil, now: now, limit: limit)
            if d.allowed {
                if s.map.count >= maxKeys && now &- s.pruned >= 1_000_000_000 {
                    s.map = s.map.filter { $0.value > now }
                    s.pruned = now
                }
                // Still full of live keys: this one is allowed without being remembered (fails open, bounded memory).
                if s.map.count < maxKeys { s.map[key] = d.tat }
            }
            return d
        }
    }

    /// The decision `take` would make, without taking (for `interpose explain`).
    func peek(_ key: String, limit: GCRALimit, now: UInt64) -> GCRADecision {
        state.withLock { s in GCRA.decide(tat: s.map[key], now: now, limit: limit) }
    }

    var keyCount: Int { state.withLock { $0.map.count } }
}

extension Double {
    /// `1s`, `1m`, `1h`, `1d` for the units; other values in seconds.
    var formattedSeconds: String {
        switch self {
        case 1: return "second"
        case 60: return "minute"
        case 3600: return "hour"
        case 86400: return "day"
        default: return "\(self)s"
        }
    }
}
