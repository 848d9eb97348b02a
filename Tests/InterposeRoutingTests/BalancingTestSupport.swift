import InterposeRouting

/// SplitMix64: a tiny deterministic RNG so statistical tests give the same numbers every run.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// Returns the given raw values in turn (cycling). With two endpoints, 0 draws index 0 and
/// UInt64.max draws index 1 for any sane `random(in:)` mapping.
struct ScriptedRNG: RandomNumberGenerator {
    var values: [UInt64]
    var position = 0
    init(_ values: [UInt64]) { self.values = values }
    mutating func next() -> UInt64 {
        defer { position = (position + 1) % values.count }
        return values[position]
    }
}

func makeEndpoints(_ weights: [UInt32]) -> [BalancerEndpoint] {
    weights.enumerated().map { BalancerEndpoint(key: "10.0.0.\($0.offset + 1):8080", weight: $0.element) }
}

func makeEndpoints(count: Int) -> [BalancerEndpoint] {
    makeEndpoints(Array(repeating: 1, count: count))
}

/// Counts picks per endpoint over `n` picks with no active requests and nothing excluded.
func countPicks(
    _ lb: inout LoadBalancer, _ n: Int, seed: UInt64 = 42,
    hash: (Int) -> UInt64? = { _ in nil },
    active: (Int) -> Int = { _ in 0 },
    excluding: (Int) -> Bool = { _ in false }
) -> [Int] {
    var rng = SplitMix64(seed: seed)
    var counts = Array(repeating: 0, count: lb.endpoints.count)
    for i in 0..<n {
        if let p = lb.pick(hash: hash(i), activeRequests: active, excluding: excluding, using: &rng) {
            counts[p] += 1
        }
    }
    return counts
}

func fraction(_ part: Int, of total: Int) -> Double { Double(part) / Double(total) }
