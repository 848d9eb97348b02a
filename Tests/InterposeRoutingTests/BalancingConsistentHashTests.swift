import Testing
import InterposeRouting

private func envoyHosts(_ names: [String]) -> [BalancerEndpoint] {
    names.map { BalancerEndpoint(key: $0, weight: 1) }
}

private let envoyAddresses = (90...95).map { "127.0.0.1:\($0)" }

private func pickOne(_ lb: LoadBalancer, hash: UInt64?, excluding: (Int) -> Bool = { _ in false }) -> Int? {
    var copy = lb
    var rng = SplitMix64(seed: 0)
    return copy.pick(hash: hash, activeRequests: { _ in 0 }, excluding: excluding, using: &rng)
}

/// Distribution over `n` random hashes.
private func hashCounts(_ lb: LoadBalancer, _ n: Int, seed: UInt64, excluding: (Int) -> Bool = { _ in false }) -> [Int] {
    var rng = SplitMix64(seed: seed)
    var lb = lb
    var counts = Array(repeating: 0, count: lb.endpoints.count)
    var hashes = SplitMix64(seed: seed ^ 0xABCDEF)
    for _ in 0..<n {
        if let p = lb.pick(hash: hashes.next(), activeRequests: { _ in 0 }, excluding: excluding, using: &rng) {
            counts[p] += 1
        }
    }
    return counts
}

private let stabilityKeys: [UInt64] = (0..<20_000).map { stableHash64("user-\($0)") }

/// Of the keys that were not on the removed endpoint, the share that stays on the same endpoint.
private func stabilityAfterRemoval(_ algorithm: BalancerAlgorithm, removing removed: Int) -> Double {
    let all = makeEndpoints(count: 5)
    var remaining = all
    remaining.remove(at: removed)
    let before = LoadBalancer(algorithm: algorithm, endpoints: all)
    let after = LoadBalancer(algorithm: algorithm, endpoints: remaining)
    var eligible = 0, kept = 0
    for key in stabilityKeys {
        let b = pickOne(before, hash: key)!
        if b == removed { continue }
        eligible += 1
        if after.endpoints[pickOne(after, hash: key)!].key == all[b].key { kept += 1 }
    }
    return fraction(kept, of: eligible)
}

private func expectEvenFive(_ algorithm: BalancerAlgorithm, tolerance: Double = 0.10) {
    let lb = LoadBalancer(algorithm: algorithm, endpoints: makeEndpoints(count: 5))
    let counts = hashCounts(lb, 100_000, seed: 5)
    for c in counts {
        #expect(abs(Double(c) - 20_000) <= 20_000 * tolerance, "\(algorithm): counts \(counts)")
    }
}

private func expectOneToThree(_ algorithm: BalancerAlgorithm) {
    let lb = LoadBalancer(algorithm: algorithm, endpoints: makeEndpoints([1, 3]))
    let counts = hashCounts(lb, 100_000, seed: 13)
    #expect(abs(fraction(counts[0], of: 100_000) - 0.25) < 0.03, "\(algorithm): counts \(counts)")
    #expect(abs(fraction(counts[1], of: 100_000) - 0.75) < 0.03, "\(algorithm): counts \(counts)")
}

private func expectDeterministic(_ algorithm: BalancerAlgorithm) {
    let a = LoadBalancer(algorithm: algorithm, endpoints: makeEndpoints(count: 5))
    let b = LoadBalancer(algorithm: algorithm, endpoints: makeEndpoints(count: 5))
    for key in stabilityKeys.prefix(2_000) {
        #expect(pickOne(a, hash: key) == pickOne(b, hash: key))
    }
}

private func expectExclusionMovesOnlyItsKeys(_ algorithm: BalancerAlgorithm) {
    let lb = LoadBalancer(algorithm: algorithm, endpoints: makeEndpoints(count: 5))
    var movedElsewhere = 0, unchanged = 0, others = 0
    for key in stabilityKeys {
        let normal = pickOne(lb, hash: key)!
        let withExclusion = pickOne(lb, hash: key, excluding: { $0 == 3 })!
        #expect(withExclusion != 3)
        if normal == 3 {
            movedElsewhere += 1
        } else {
            others += 1
            if withExclusion == normal { unchanged += 1 }
        }
    }
    #expect(movedElsewhere > 2_000, "\(algorithm): endpoint 3 owned \(movedElsewhere) keys")
    #expect(unchanged == others, "\(algorithm): keys of healthy endpoints must not move")
    let counts = hashCounts(lb, 20_000, seed: 21, excluding: { $0 == 3 })
    #expect(counts[3] == 0)
    #expect(counts.reduce(0, +) == 20_000)
    // The ejected endpoint's share spreads over more than one survivor.
    #expect(counts.enumerated().filter { $0.offset != 3 }.allSatisfy { $0.element > 4_000 }, "counts \(counts)")
    #expect(pickOne(lb, hash: 1, excluding: { _ in true }) == nil)
}

@Suite("Balancing: ring hash")
struct BalancingRingHashTests {
    /// Envoy ring_hash_lb_test.cc `Basic`: same hosts, minimum ring 12, same answers.
    @Test func matchesEnvoyRing() {
        let lb = LoadBalancer(algorithm: .ringHash(minimumRingSize: 12), endpoints: envoyHosts(envoyAddresses))
        #expect(lb.hashTableSize == 12)
        #expect(lb.hashTableShares() == [2, 2, 2, 2, 2, 2])
        #expect(pickOne(lb, hash: 0) == 4)
        #expect(pickOne(lb, hash: .max) == 4)
        #expect(pickOne(lb, hash: 3_551_244_743_356_806_947) == 5)
        #expect(pickOne(lb, hash: 3_551_244_743_356_806_948) == 3)
        // No hash: a random 64-bit value is used as the hash.
        var copy = lb
        var rng = ScriptedRNG([16_117_243_373_044_804_880])
        #expect(copy.pick(hash: nil, activeRequests: { _ in 0 }, using: &rng) == 0)

        // `BasicWithHostname`: keys "90"..."95".
        let byName = LoadBalancer(algorithm: .ringHash(minimumRingSize: 12), endpoints: envoyHosts((90...95).map(String.init)))
        #expect(pickOne(byName, hash: 0) == 5)
        #expect(pickOne(byName, hash: .max) == 5)
        #expect(pickOne(byName, hash: 7_225_015_537_174_310_577) == 2)
        #expect(pickOne(byName, hash: 6_803_900_775_736_438_537) == 3)
    }

    @Test func ringSizing() {
        // 5 equal: ceil(0.2 * 1024) / 0.2 = 1025 entries, 205 each.
        let five = LoadBalancer(algorithm: .ringHash(), endpoints: makeEndpoints(count: 5))
        #expect(five.hashTableSize == 1025)
        #expect(five.hashTableShares() == [205, 205, 205, 205, 205])
        // 1:3 -> 256 / 768.
        let weighted = LoadBalancer(algorithm: .ringHash(), endpoints: makeEndpoints([1, 3]))
        #expect(weighted.hashTableShares() == [256, 768])
        // Capped by the maximum.
        let capped = LoadBalancer(algorithm: .ringHash(minimumRingSize: 1024, maximumRingSize: 100), endpoints: makeEndpoints([1, 1000]))
        #expect(capped.hashTableSize == 100)
        // Smallest weight gets at least one entry.
        let tiny = LoadBalancer(algorithm: .ringHash(minimumRingSize: 4), endpoints: makeEndpoints([1, 99]))
        #expect(tiny.hashTableShares() == [1, 99])
    }

    /// With 16384 ring entries (3277 per endpoint) the spread is a few percent.
    @Test func evenAcrossFiveEqualEndpoints() { expectEvenFive(.ringHash(minimumRingSize: 16_384)) }

    /// Envoy's (and Istio's) default 1024-entry ring gives each of 5 endpoints only 205 points, so
    /// shares spread by about +-7% (one sigma); these keys land at -11.3% .. +8.1%. Same ring as Envoy.
    @Test func defaultRingSpreadIsEnvoys() {
        let lb = LoadBalancer(algorithm: .ringHash(), endpoints: makeEndpoints(count: 5))
        #expect(hashCounts(lb, 100_000, seed: 5) == [17_731, 19_170, 20_484, 20_996, 21_619])
        expectEvenFive(.ringHash(), tolerance: 0.15)
    }
    @Test func weightsOneToThree() { expectOneToThree(.ringHash()) }

    @Test func removingOneEndpointKeepsMostKeys() {
        for removed in 0..<5 {
            let kept = stabilityAfterRemoval(.ringHash(), removing: removed)
            #expect(kept >= 0.75, "removing \(removed): kept \(kept)")
        }
    }

    @Test func deterministicAcrossInstances() { expectDeterministic(.ringHash()) }
    @Test func excludedEndpointWalksForward() { expectExclusionMovesOnlyItsKeys(.ringHash()) }

    @Test func emptyGivesNil() {
        #expect(pickOne(LoadBalancer(algorithm: .ringHash(), endpoints: []), hash: 1) == nil)
    }
}

@Suite("Balancing: maglev")
struct BalancingMaglevTests {
    /// Envoy maglev_lb_test.cc `Basic`, `BasicWithHostName` and `Weighted`: same tables.
    @Test func matchesEnvoyTables() {
        let lb = LoadBalancer(algorithm: .maglev(tableSize: 7), endpoints: envoyHosts(envoyAddresses))
        let expected = [2, 4, 0, 1, 5, 0, 3]
        for h in 0..<21 { #expect(pickOne(lb, hash: UInt64(h)) == expected[h % 7], "hash \(h)") }

        let byName = LoadBalancer(algorithm: .maglev(tableSize: 7), endpoints: envoyHosts((90...95).map(String.init)))
        let expectedByName = [2, 5, 0, 3, 4, 1, 0]
        for h in 0..<21 { #expect(pickOne(byName, hash: UInt64(h)) == expectedByName[h % 7], "hash \(h)") }

        let weighted = LoadBalancer(
            algorithm: .maglev(tableSize: 17),
            endpoints: [BalancerEndpoint(key: "127.0.0.1:90", weight: 1), BalancerEndpoint(key: "127.0.0.1:91", weight: 2)])
        #expect(weighted.hashTableShares() == [6, 11])
        let expectedWeighted = [1, 0, 0, 1, 0, 1, 1, 0, 1, 1, 1, 1, 1, 0, 1, 0, 1]
        for h in 0..<51 { #expect(pickOne(weighted, hash: UInt64(h)) == expectedWeighted[h % 17], "hash \(h)") }
    }

    /// Envoy `BasicStability`: the table does not depend on endpoint order.
    @Test func independentOfEndpointOrder() {
        let forward = LoadBalancer(algorithm: .maglev(), endpoints: makeEndpoints(count: 5))
        let reversed = LoadBalancer(algorithm: .maglev(), endpoints: makeEndpoints(count: 5).reversed())
        for key in stabilityKeys.prefix(2_000) {
            let a = forward.endpoints[pickOne(forward, hash: key)!].key
            let b = reversed.endpoints[pickOne(reversed, hash: key)!].key
            #expect(a == b)
        }
    }

    @Test func tableSizing() {
        let lb = LoadBalancer(algorithm: .maglev(), endpoints: makeEndpoints(count: 5))
        #expect(lb.hashTableSize == 65537)
        #expect(lb.hashTableShares().allSatisfy { $0 == 13107 || $0 == 13108 })
        // Non-prime sizes round up to the next prime.
        #expect(LoadBalancer(algorithm: .maglev(tableSize: 8), endpoints: makeEndpoints(count: 2)).hashTableSize == 11)
        #expect(LoadBalancer(algorithm: .maglev(tableSize: 65536), endpoints: makeEndpoints(count: 2)).hashTableSize == 65537)
    }

    @Test func evenAcrossFiveEqualEndpoints() { expectEvenFive(.maglev()) }
    @Test func weightsOneToThree() { expectOneToThree(.maglev()) }

    @Test func removingOneEndpointKeepsMostKeys() {
        for removed in 0..<5 {
            let kept = stabilityAfterRemoval(.maglev(), removing: removed)
            #expect(kept >= 0.70, "removing \(removed): kept \(kept)")
        }
    }

    @Test func deterministicAcrossInstances() { expectDeterministic(.maglev()) }
    @Test func excludedEndpointProbesNextSlots() { expectExclusionMovesOnlyItsKeys(.maglev()) }

    @Test func noHashFallsBackToRandom() {
        var lb = LoadBalancer(algorithm: .maglev(), endpoints: makeEndpoints(count: 4))
        let counts = countPicks(&lb, 40_000, seed: 12)
        for c in counts { #expect(abs(fraction(c, of: 40_000) - 0.25) < 0.02, "counts \(counts)") }
    }
}
