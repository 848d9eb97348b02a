/// Least-request choice (Envoy `LEAST_REQUEST`, Istio's default `simple` policy).
///
/// - All weights equal: power of `choiceCount` choices. Draw `choiceCount` eligible endpoints
///   uniformly at random (with replacement, as Envoy does) and keep the one with the fewest active
///   requests; on a tie the earlier draw wins.
/// - Unequal weights: Envoy's dynamic weight `weight / (active + 1)^bias` with
///   `active_request_bias` 1.0, i.e. `weight / (active + 1)`, then a weighted random draw over
///   those effective weights. (Envoy feeds the same effective weights to its EDF scheduler; we draw
///   at random so that no per-endpoint scheduler state must be kept in step with changing load.)
struct LeastRequest: Sendable {
    private let weights: [Double]
    private let uniform: Bool
    private let choiceCount: Int

    init(weights: [UInt32], choiceCount: Int) {
        let w = weights.map { $0 == 0 ? UInt32(1) : $0 }
        self.weights = w.map(Double.init)
        self.uniform = Set(w).count <= 1
        self.choiceCount = max(1, choiceCount)
    }

    func pick<R: RandomNumberGenerator>(
        activeRequests: (Int) -> Int, excluding: (Int) -> Bool, using rng: inout R
    ) -> Int? {
        let n = weights.count
        guard n > 0 else { return nil }
        if uniform {
            guard var best = UniformIndex.pick(count: n, excluding: excluding, using: &rng) else { return nil }
            if n == 1 { return best }
            var bestActive = activeRequests(best)
            for _ in 1..<choiceCount {
                guard let i = UniformIndex.pick(count: n, excluding: excluding, using: &rng) else { break }
                let a = activeRequests(i)
                if a < bestActive {
                    best = i
                    bestActive = a
                }
            }
            return best
        }
        var sum = 0.0
        for i in 0..<n where !excluding(i) {
            sum += effectiveWeight(i, activeRequests)
        }
        guard sum > 0 else { return nil }
        var roll = Double.random(in: 0..<sum, using: &rng)
        var last = -1
        for i in 0..<n where !excluding(i) {
            roll -= effectiveWeight(i, activeRequests)
            if roll < 0 { return i }
            last = i
        }
        return last >= 0 ? last : nil  // floating-point leftovers land on the last eligible endpoint
    }

    @inline(__always)
    private func effectiveWeight(_ i: Int, _ activeRequests: (Int) -> Int) -> Double {
        weights[i] / Double(max(0, activeRequests(i)) + 1)
    }
}
