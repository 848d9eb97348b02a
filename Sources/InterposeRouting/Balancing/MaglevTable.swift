/// Google's Maglev lookup table with Envoy's weighting (`MAGLEV`), built as Envoy's
/// `OriginalMaglevTable`.
///
/// Endpoints are sorted by key first (Envoy does this so the table does not depend on the order the
/// endpoints arrive in). Each endpoint's permutation is `offset = xxHash64(key, seed 0) % M`,
/// `skip = xxHash64(key, seed 1) % (M - 1) + 1`. Filling goes round by round; in round `r` an endpoint
/// takes its next free preferred slot only when `r * w >= target` (then `target += max(w)`), with
/// `w` the normalized weight, so slots fill in proportion to weight. Lookup is `table[hash % M]`.
/// `M` must be prime: a non-prime size is rounded up to the next prime.
struct MaglevTable: Sendable {
    private let table: [UInt32]
    private let endpointCount: Int

    init(endpoints: [BalancerEndpoint], tableSize requested: Int) {
        endpointCount = endpoints.count
        guard !endpoints.isEmpty else {
            table = []
            return
        }
        let size = Primes.atLeast(requested)
        let m = UInt64(size)
        let sum = endpoints.reduce(UInt64(0)) { $0 + UInt64($1.effectiveWeight) }

        struct BuildEntry {
            var owner: UInt32
            var slot: UInt64    // current permutation value: (offset + skip * next) % M
            var skip: UInt64
            var weight: Double
            var target: Double = 0
        }
        let order = endpoints.indices.sorted {
            let a = endpoints[$0].key.utf8, b = endpoints[$1].key.utf8
            if a.elementsEqual(b) { return $0 < $1 }
            return a.lexicographicallyPrecedes(b)  // bytewise, like Envoy's string_view sort
        }
        var entries: [BuildEntry] = order.map { index in
            let key = endpoints[index].key
            let offset = xxHash64(key, seed: 0) % m
            let skip = xxHash64(key, seed: 1) % (m - 1) + 1
            let weight = Double(endpoints[index].effectiveWeight) * 1.0 / Double(sum)
            return BuildEntry(owner: UInt32(index), slot: offset, skip: skip, weight: weight)
        }
        let maxWeight = entries.map(\.weight).max() ?? 1.0

        var built = Array(repeating: UInt32.max, count: size)
        var filled = 0
        var iteration: UInt32 = 1
        while filled < size {
            for i in entries.indices where filled < size {
                if Double(iteration) * entries[i].weight < entries[i].target { continue }
                entries[i].target += maxWeight
                while built[Int(entries[i].slot)] != UInt32.max {
                    entries[i].slot = (entries[i].slot + entries[i].skip) % m
                }
                built[Int(entries[i].slot)] = entries[i].owner
                entries[i].slot = (entries[i].slot + entries[i].skip) % m
                filled += 1
            }
            iteration += 1
        }
        table = built
    }

    var size: Int { table.count }

    /// Slots per endpoint (diagnostics, tests).
    func slotCounts() -> [Int] {
        var counts = Array(repeating: 0, count: endpointCount)
        for o in table { counts[Int(o)] += 1 }
        return counts
    }

    /// `table[hash % M]`, probing the following slots past excluded endpoints.
    func pick(hash: UInt64, excluding: (Int) -> Bool) -> Int? {
        let size = table.count
        guard size > 0 else { return nil }
        var slot = Int(hash % UInt64(size))
        let quickSteps = min(size, 64)
        for _ in 0..<quickSteps {
            let owner = Int(table[slot])
            if !excluding(owner) { return owner }
            slot += 1
            if slot == size { slot = 0 }
        }
        guard UniformIndex.anyEligible(count: endpointCount, excluding: excluding) else { return nil }
        for _ in quickSteps..<size {
            let owner = Int(table[slot])
            if !excluding(owner) { return owner }
            slot += 1
            if slot == size { slot = 0 }
        }
        return nil
    }
}
