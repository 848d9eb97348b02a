/// Picks one of several weighted destinations: Istio `VirtualService` `http[].route[].weight`
/// (and `tcp`/`tls` routes), i.e. Envoy `weighted_clusters`.
///
/// Weights are relative integers >= 0 with no sum-to-100 rule. As Istio translates them:
/// zero-weight destinations are dropped (never picked) when there are several, a single
/// destination always takes 100% (even with weight 0), and several destinations that are all
/// zero give nil. A roll in `0..<total` maps to the destination whose cumulative range holds it,
/// as Envoy walks `weighted_clusters`.
public struct WeightedChoice: Sendable, Equatable {
    public let weights: [UInt32]
    /// Sum of the weights (the roll range is `0..<total`). For one destination this is 1 when its weight is 0.
    public let total: UInt64
    private let cumulative: [UInt64]

    public init(_ weights: [UInt32]) {
        self.weights = weights
        if weights.count == 1 {
            cumulative = [UInt64(max(weights[0], 1))]
        } else {
            var running: UInt64 = 0
            cumulative = weights.map { running += UInt64($0); return running }
        }
        total = cumulative.last ?? 0
    }

    /// The destination for `roll` (taken modulo `total`); nil when nothing can be picked.
    public func index(forRoll roll: UInt64) -> Int? {
        guard total > 0 else { return nil }
        let r = roll % total
        var lo = 0
        var hi = cumulative.count - 1
        while lo < hi {
            let mid = (lo + hi) / 2
            if cumulative[mid] > r { hi = mid } else { lo = mid + 1 }
        }
        return lo
    }

    /// A random destination in proportion to weight.
    public func pick<R: RandomNumberGenerator>(using rng: inout R) -> Int? {
        guard total > 0 else { return nil }
        return index(forRoll: UInt64.random(in: 0..<total, using: &rng))
    }

    /// One-shot pick without building a table (two linear passes, no allocation).
    public static func pick<R: RandomNumberGenerator>(_ weights: [UInt32], using rng: inout R) -> Int? {
        if weights.count == 1 { return 0 }
        var total: UInt64 = 0
        for w in weights { total += UInt64(w) }
        guard total > 0 else { return nil }
        return index(forRoll: UInt64.random(in: 0..<total, using: &rng), in: weights)
    }

    /// One-shot mapping of a roll (taken modulo the weight total) to a destination.
    public static func index(forRoll roll: UInt64, in weights: [UInt32]) -> Int? {
        if weights.count == 1 { return 0 }
        var total: UInt64 = 0
        for w in weights { total += UInt64(w) }
        guard total > 0 else { return nil }
        var r = roll % total
        for (i, w) in weights.enumerated() {
            if r < UInt64(w) { return i }
            r -= UInt64(w)
        }
        return nil
    }
}
