/// Weighted round robin state (Envoy `ROUND_ROBIN`).
///
/// Equal weights: plain rotation (Envoy's unweighted round robin). Unequal weights: nginx's smooth
/// weighted round robin (each pick adds every eligible endpoint's weight to its `current`, takes the
/// largest `current`, and subtracts the eligible total from the winner), so 3:1 yields
/// `a a b a` rather than `a a a b`. Envoy uses an EDF scheduler here; over a full cycle both give
/// exactly the weighted counts and both interleave.
struct SmoothRoundRobin: Sendable {
    private let weights: [Int64]
    private let uniform: Bool
    private var current: [Int64]
    private var next: Int = 0

    init(weights: [UInt32]) {
        self.weights = weights.map { Int64($0 == 0 ? 1 : $0) }
        self.uniform = Set(self.weights).count <= 1
        self.current = uniform ? [] : Array(repeating: 0, count: weights.count)
    }

    mutating func pick(excluding: (Int) -> Bool) -> Int? {
        let n = weights.count
        guard n > 0 else { return nil }
        if uniform {
            for step in 0..<n {
                let i = (next + step) % n
                if !excluding(i) {
                    next = (i + 1) % n
                    return i
                }
            }
            return nil
        }
        var total: Int64 = 0
        var best = -1
        current.withUnsafeMutableBufferPointer { current in
            for i in 0..<n where !excluding(i) {
                current[i] += weights[i]
                total += weights[i]
                if best < 0 || current[i] > current[best] { best = i }
            }
            if best >= 0 { current[best] -= total }
        }
        return best >= 0 ? best : nil
    }
}
