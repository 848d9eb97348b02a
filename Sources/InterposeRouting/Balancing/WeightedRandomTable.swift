/// Weighted random choice over endpoints with precomputed prefix sums (used for `RANDOM`).
///
/// Fast path: draw in `0..<total`, binary search, retry a few times if the drawn endpoint is
/// excluded. Fallback: an exact pass over the eligible endpoints only. Each phase picks with
/// probability proportional to weight among eligible endpoints, so the result does too.
struct WeightedRandomTable: Sendable {
    private let weights: [UInt64]
    private let cumulative: [UInt64]
    private let total: UInt64
    private let uniform: Bool

    init(weights: [UInt32]) {
        let w = weights.map { UInt64($0 == 0 ? 1 : $0) }
        var sums: [UInt64] = []
        sums.reserveCapacity(w.count)
        var running: UInt64 = 0
        for x in w {
            running += x
            sums.append(running)
        }
        self.weights = w
        self.cumulative = sums
        self.total = running
        self.uniform = Set(w).count <= 1
    }

    var count: Int { weights.count }

    func pick<R: RandomNumberGenerator>(excluding: (Int) -> Bool, using rng: inout R) -> Int? {
        let n = weights.count
        guard n > 0 else { return nil }
        if uniform { return UniformIndex.pick(count: n, excluding: excluding, using: &rng) }
        for _ in 0..<UniformIndex.rejectionTries {
            let i = index(forRoll: UInt64.random(in: 0..<total, using: &rng))
            if !excluding(i) { return i }
        }
        var eligibleTotal: UInt64 = 0
        for i in 0..<n where !excluding(i) { eligibleTotal += weights[i] }
        guard eligibleTotal > 0 else { return nil }
        var roll = UInt64.random(in: 0..<eligibleTotal, using: &rng)
        for i in 0..<n where !excluding(i) {
            if roll < weights[i] { return i }
            roll -= weights[i]
        }
        return nil
    }

    /// First index whose cumulative weight exceeds `roll` (`roll` in `0..<total`).
    func index(forRoll roll: UInt64) -> Int {
        var lo = 0
        var hi = cumulative.count - 1
        while lo < hi {
            let mid = (lo + hi) / 2
            if cumulative[mid] > roll { hi = mid } else { lo = mid + 1 }
        }
        return lo
    }
}
