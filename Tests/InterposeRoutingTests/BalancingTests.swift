import Testing
import InterposeRouting

// MARK: - Round robin

@Suite("Balancing: round robin")
struct BalancingRoundRobinTests {
    func picks(_ lb: inout LoadBalancer, _ n: Int, excluding: (Int) -> Bool = { _ in false }) -> [Int?] {
        var rng = SplitMix64(seed: 1)
        return (0..<n).map { _ in lb.pick(hash: nil, activeRequests: { _ in 0 }, excluding: excluding, using: &rng) }
    }

    @Test func equalWeightsRotateExactly() {
        var lb = LoadBalancer(algorithm: .roundRobin, endpoints: makeEndpoints(count: 3))
        #expect(picks(&lb, 9) == [0, 1, 2, 0, 1, 2, 0, 1, 2])
    }

    @Test func zeroWeightIsTreatedAsOne() {
        var lb = LoadBalancer(algorithm: .roundRobin, endpoints: makeEndpoints([0, 1]))
        #expect(picks(&lb, 4) == [0, 1, 0, 1])
    }

    @Test func weightsThreeToOneAreExactAndSmooth() {
        var lb = LoadBalancer(algorithm: .roundRobin, endpoints: makeEndpoints([3, 1]))
        let sequence = picks(&lb, 4000)
        #expect(sequence.filter { $0 == 0 }.count == 3000)
        #expect(sequence.filter { $0 == 1 }.count == 1000)
        // nginx smooth WRR: a a b a, never a a a b.
        #expect(Array(sequence.prefix(8)) == [0, 0, 1, 0, 0, 0, 1, 0])
        // The whole run is the 4-pick cycle a a b a repeated: b never waits more than 3 picks.
        let cycle = [0, 0, 1, 0]
        #expect(sequence.enumerated().allSatisfy { $0.element == cycle[$0.offset % 4] })
    }

    @Test func weightsFiveOneOneInterleave() {
        // nginx's documented example: {a:5, b:1, c:1} -> a a b a c a a.
        var lb = LoadBalancer(algorithm: .roundRobin, endpoints: makeEndpoints([5, 1, 1]))
        #expect(picks(&lb, 7) == [0, 0, 1, 0, 2, 0, 0])
    }

    @Test func excludedEndpointsAreSkipped() {
        var lb = LoadBalancer(algorithm: .roundRobin, endpoints: makeEndpoints(count: 4))
        #expect(picks(&lb, 6, excluding: { $0 == 1 }) == [0, 2, 3, 0, 2, 3])

        var weighted = LoadBalancer(algorithm: .roundRobin, endpoints: makeEndpoints([3, 1, 2]))
        let sequence = picks(&weighted, 600, excluding: { $0 == 2 })
        #expect(sequence.filter { $0 == 2 }.isEmpty)
        #expect(sequence.filter { $0 == 0 }.count == 450)
        #expect(sequence.filter { $0 == 1 }.count == 150)
    }

    @Test func allExcludedOrEmptyGivesNil() {
        var lb = LoadBalancer(algorithm: .roundRobin, endpoints: makeEndpoints([2, 1]))
        #expect(picks(&lb, 2, excluding: { _ in true }) == [nil, nil])
        var empty = LoadBalancer(algorithm: .roundRobin, endpoints: [])
        #expect(picks(&empty, 1) == [nil])
    }
}

// MARK: - Least request

@Suite("Balancing: least request")
struct BalancingLeastRequestTests {
    @Test func busyEndpointIsPickedFarLessOften() {
        var lb = LoadBalancer(algorithm: .leastRequest(), endpoints: makeEndpoints(count: 4))
        let counts = countPicks(&lb, 10_000, seed: 7, active: { $0 == 0 ? 10 : 0 })
        let idleMean = Double(counts[1] + counts[2] + counts[3]) / 3
        // P2C: the busy one wins only when both draws hit it: 1/16 of picks (~625).
        #expect(Double(counts[0]) < 0.2 * idleMean, "counts \(counts)")
        #expect(abs(fraction(counts[0], of: 10_000) - 1.0 / 16.0) < 0.01, "counts \(counts)")
        for idle in counts[1...] {
            #expect(abs(fraction(idle, of: 10_000) - 5.0 / 16.0) < 0.02, "counts \(counts)")
        }
    }

    @Test func twoEndpointsNeverPickTheBusierWhenBothAreDrawn() {
        let lb0 = LoadBalancer(algorithm: .leastRequest(), endpoints: makeEndpoints(count: 2))
        // Raw value 0 draws index 0, UInt64.max draws index 1.
        let draws: [(UInt64, UInt64, expectBusyAt0: Int, expectBusyAt1: Int)] = [
            (0, 0, 0, 0),                 // both draws hit endpoint 0: no choice
            (0, .max, 1, 0),              // both drawn: the idle one wins
            (.max, 0, 1, 0),
            (.max, .max, 1, 1),
        ]
        for (first, second, whenZeroBusy, whenOneBusy) in draws {
            var lb = lb0
            var rng = ScriptedRNG([first, second])
            #expect(lb.pick(hash: nil, activeRequests: { $0 == 0 ? 5 : 0 }, using: &rng) == whenZeroBusy)
            rng = ScriptedRNG([first, second])
            #expect(lb.pick(hash: nil, activeRequests: { $0 == 1 ? 5 : 0 }, using: &rng) == whenOneBusy)
        }
        // Ties keep the first draw.
        var lb = lb0
        var rng = ScriptedRNG([.max, 0])
        #expect(lb.pick(hash: nil, activeRequests: { _ in 3 }, using: &rng) == 1)

        // Statistically: the busier one is chosen only on a double draw of it (1/4).
        var statLB = lb0
        let counts = countPicks(&statLB, 20_000, seed: 3, active: { $0 == 0 ? 5 : 1 })
        #expect(abs(fraction(counts[0], of: 20_000) - 0.25) < 0.015, "counts \(counts)")
    }

    @Test func moreChoicesFavourTheIdleMore() {
        var lb = LoadBalancer(algorithm: .leastRequest(choiceCount: 3), endpoints: makeEndpoints(count: 2))
        let counts = countPicks(&lb, 20_000, seed: 5, active: { $0 == 0 ? 5 : 0 })
        #expect(abs(fraction(counts[0], of: 20_000) - 0.125) < 0.015, "counts \(counts)")
    }

    @Test func weightedUsesWeightOverActivePlusOne() {
        // Weights 2:1; active 3 vs 0 -> effective 2/4 = 0.5 vs 1/1 = 1 -> 1/3 vs 2/3.
        var lb = LoadBalancer(algorithm: .leastRequest(), endpoints: makeEndpoints([2, 1]))
        let counts = countPicks(&lb, 30_000, seed: 9, active: { $0 == 0 ? 3 : 0 })
        #expect(abs(fraction(counts[0], of: 30_000) - 1.0 / 3.0) < 0.015, "counts \(counts)")
        // Idle: plain weights 2:1.
        var idle = LoadBalancer(algorithm: .leastRequest(), endpoints: makeEndpoints([2, 1]))
        let idleCounts = countPicks(&idle, 30_000, seed: 9)
        #expect(abs(fraction(idleCounts[0], of: 30_000) - 2.0 / 3.0) < 0.015, "counts \(idleCounts)")
    }

    @Test func excludedAreNeverPicked() {
        var lb = LoadBalancer(algorithm: .leastRequest(), endpoints: makeEndpoints(count: 3))
        let counts = countPicks(&lb, 3_000, excluding: { $0 == 0 })
        #expect(counts[0] == 0)
        #expect(counts[1] + counts[2] == 3_000)
        var weighted = LoadBalancer(algorithm: .leastRequest(), endpoints: makeEndpoints([1, 2, 3]))
        let weightedCounts = countPicks(&weighted, 3_000, excluding: { $0 == 2 })
        #expect(weightedCounts[2] == 0)
        #expect(weightedCounts[0] + weightedCounts[1] == 3_000)
        var rng = SplitMix64(seed: 1)
        #expect(lb.pick(hash: nil, activeRequests: { _ in 0 }, excluding: { _ in true }, using: &rng) == nil)
        #expect(weighted.pick(hash: nil, activeRequests: { _ in 0 }, excluding: { _ in true }, using: &rng) == nil)
    }
}

// MARK: - Random

@Suite("Balancing: random")
struct BalancingRandomTests {
    @Test func weightsOneOneTwoWithinTwoPercent() {
        var lb = LoadBalancer(algorithm: .random, endpoints: makeEndpoints([1, 1, 2]))
        let counts = countPicks(&lb, 100_000, seed: 2024)
        #expect(abs(fraction(counts[0], of: 100_000) - 0.25) < 0.02, "counts \(counts)")
        #expect(abs(fraction(counts[1], of: 100_000) - 0.25) < 0.02, "counts \(counts)")
        #expect(abs(fraction(counts[2], of: 100_000) - 0.50) < 0.02, "counts \(counts)")
    }

    @Test func excludingKeepsTheRemainingRatio() {
        var lb = LoadBalancer(algorithm: .random, endpoints: makeEndpoints([1, 1, 2]))
        let counts = countPicks(&lb, 90_000, seed: 11, excluding: { $0 == 1 })
        #expect(counts[1] == 0)
        #expect(abs(fraction(counts[0], of: 90_000) - 1.0 / 3.0) < 0.02, "counts \(counts)")
        // Mostly excluded: the exact fallback pass must still find the one eligible endpoint.
        var many = LoadBalancer(algorithm: .random, endpoints: makeEndpoints(Array(repeating: 5, count: 99) + [1]))
        let manyCounts = countPicks(&many, 1_000, excluding: { $0 != 99 })
        #expect(manyCounts[99] == 1_000)
    }

    @Test func equalWeightsAreUniform() {
        var lb = LoadBalancer(algorithm: .random, endpoints: makeEndpoints(count: 4))
        let counts = countPicks(&lb, 100_000, seed: 77)
        for c in counts { #expect(abs(fraction(c, of: 100_000) - 0.25) < 0.01, "counts \(counts)") }
    }
}

// MARK: - Weighted destinations (VirtualService route weights)

@Suite("Balancing: weighted choice")
struct BalancingWeightedChoiceTests {
    @Test func ninetyTenWithinOnePercent() {
        var rng = SplitMix64(seed: 90)
        var counts = [0, 0]
        for _ in 0..<100_000 { counts[WeightedChoice.pick([90, 10], using: &rng)!] += 1 }
        #expect(abs(fraction(counts[0], of: 100_000) - 0.9) < 0.01, "counts \(counts)")

        let table = WeightedChoice([90, 10])
        var tableCounts = [0, 0]
        for _ in 0..<100_000 { tableCounts[table.pick(using: &rng)!] += 1 }
        #expect(abs(fraction(tableCounts[1], of: 100_000) - 0.1) < 0.01, "counts \(tableCounts)")
    }

    @Test func zeroWeightsAreNeverPicked() {
        var rng = SplitMix64(seed: 4)
        var counts = [0, 0, 0]
        for _ in 0..<10_000 { counts[WeightedChoice.pick([0, 3, 0], using: &rng)!] += 1 }
        #expect(counts == [0, 10_000, 0])
        #expect(WeightedChoice.pick([0, 0], using: &rng) == nil)
        #expect(WeightedChoice.pick([], using: &rng) == nil)
        #expect(WeightedChoice([0, 0, 0]).pick(using: &rng) == nil)
    }

    @Test func singleDestinationAlwaysPicked() {
        var rng = SplitMix64(seed: 5)
        for w: UInt32 in [0, 1, 100] {
            for _ in 0..<100 {
                #expect(WeightedChoice.pick([w], using: &rng) == 0)
                #expect(WeightedChoice([w]).pick(using: &rng) == 0)
            }
        }
    }

    @Test func rollsMapToCumulativeRanges() {
        let choice = WeightedChoice([2, 0, 3])
        #expect(choice.total == 5)
        #expect((0..<5).map { choice.index(forRoll: $0) } == [0, 0, 2, 2, 2])
        #expect((0..<5).map { WeightedChoice.index(forRoll: $0, in: [2, 0, 3]) } == [0, 0, 2, 2, 2])
    }
}

// MARK: - Percent sampling (mirrorPercentage)

@Suite("Balancing: percent sampler")
struct BalancingPercentSamplerTests {
    @Test func zeroNeverHundredAlways() {
        var rng = SplitMix64(seed: 8)
        for _ in 0..<10_000 {
            #expect(!PercentSampler.sample(percent: 0, using: &rng))
            #expect(PercentSampler.sample(percent: 100, using: &rng))
        }
        #expect(!PercentSampler.sample(percent: -5, using: &rng))
        #expect(!PercentSampler.sample(percent: .nan, using: &rng))
        #expect(PercentSampler.sample(percent: 250, using: &rng))
    }

    @Test func twentyFiveWithinOnePercent() {
        var rng = SplitMix64(seed: 25)
        var hits = 0
        for _ in 0..<100_000 where PercentSampler.sample(percent: 25, using: &rng) { hits += 1 }
        #expect(abs(fraction(hits, of: 100_000) - 0.25) < 0.01, "hits \(hits)")
    }

    @Test func istioMillionthPrecision() {
        #expect(PercentSampler.numerator(percent: 25) == 250_000)
        #expect(PercentSampler.numerator(percent: 0.0001) == 1)
        #expect(PercentSampler.numerator(percent: 0.00001) == 0)
        #expect(PercentSampler.numerator(percent: 99.99995) == 999_999)
    }
}

@Suite("Balancing: the request-path random generator")
struct BalancingFastRandomTests {
    @Test func isDeterministicPerSeedAndSpreadsEvenly() {
        var a = FastRandom(seed: 42), b = FastRandom(seed: 42), c = FastRandom(seed: 43)
        let first = (0..<4).map { _ in a.next() }
        #expect(first == (0..<4).map { _ in b.next() })
        #expect(first != (0..<4).map { _ in c.next() })
        var r = FastRandom(seed: 7)
        var buckets = [Int](repeating: 0, count: 10)
        for _ in 0..<100_000 { buckets[Int.random(in: 0..<10, using: &r)] += 1 }
        #expect(buckets.allSatisfy { (9_500...10_500).contains($0) }, "\(buckets)")
    }
}
