/// Picks an upstream endpoint for one request: Envoy's cluster load balancer for the policy an
/// Istio `DestinationRule` sets (`loadBalancer.simple` or `loadBalancer.consistentHash`).
///
/// A value type: tables are precomputed in `init` (ring, maglev table, prefix sums) and `pick`
/// does not allocate. Only round robin keeps state between picks, hence `mutating`.
/// Rebuild the balancer when the endpoint set or weights change (Envoy rebuilds too).
///
/// `pick` returns an index into ``endpoints``, or nil when there are no endpoints or all are
/// excluded. `excluding` marks endpoints that must not be chosen (unhealthy, outlier-ejected,
/// already tried by a retry); it and `activeRequests` must answer consistently during one call.
/// For ring hash and maglev, `hash` is the request hash from the route's hash policy (header,
/// cookie, source IP, query parameter, typically `stableHash64(_:)` of the value);
/// when it is nil a random 64-bit value is used instead, as Envoy does.
/// The other algorithms ignore `hash`.
public struct LoadBalancer: Sendable {
    public let algorithm: BalancerAlgorithm
    public let endpoints: [BalancerEndpoint]

    private enum Strategy: Sendable {
        case roundRobin
        case leastRequest(LeastRequest)
        case random(WeightedRandomTable)
        case ringHash(HashRing)
        case maglev(MaglevTable)
    }

    private let strategy: Strategy
    private var roundRobin: SmoothRoundRobin

    public init(algorithm: BalancerAlgorithm, endpoints: [BalancerEndpoint]) {
        self.algorithm = algorithm
        self.endpoints = endpoints
        let weights = endpoints.map(\.effectiveWeight)
        switch algorithm {
        case .roundRobin:
            strategy = .roundRobin
            roundRobin = SmoothRoundRobin(weights: weights)
        case .leastRequest(let choiceCount):
            strategy = .leastRequest(LeastRequest(weights: weights, choiceCount: choiceCount))
            roundRobin = SmoothRoundRobin(weights: [])
        case .random:
            strategy = .random(WeightedRandomTable(weights: weights))
            roundRobin = SmoothRoundRobin(weights: [])
        case .ringHash(let minimumRingSize, let maximumRingSize):
            strategy = .ringHash(HashRing(
                endpoints: endpoints, minimumRingSize: minimumRingSize, maximumRingSize: maximumRingSize))
            roundRobin = SmoothRoundRobin(weights: [])
        case .maglev(let tableSize):
            strategy = .maglev(MaglevTable(endpoints: endpoints, tableSize: tableSize))
            roundRobin = SmoothRoundRobin(weights: [])
        }
    }

    /// The number of ring entries (ring hash) or table slots (maglev); 0 for the other algorithms.
    public var hashTableSize: Int {
        switch strategy {
        case .ringHash(let ring): return ring.size
        case .maglev(let table): return table.size
        case .roundRobin, .leastRequest, .random: return 0
        }
    }

    /// Ring entries (ring hash) or table slots (maglev) owned by each endpoint, in endpoint order;
    /// empty for the other algorithms. For diagnostics (`explain`) and tests; allocates.
    public func hashTableShares() -> [Int] {
        switch strategy {
        case .ringHash(let ring): return ring.entryCounts()
        case .maglev(let table): return table.slotCounts()
        case .roundRobin, .leastRequest, .random: return []
        }
    }

    public mutating func pick<R: RandomNumberGenerator>(
        hash: UInt64?,
        activeRequests: (Int) -> Int,
        excluding: (Int) -> Bool = { _ in false },
        using rng: inout R
    ) -> Int? {
        guard !endpoints.isEmpty else { return nil }
        switch strategy {
        case .roundRobin:
            return roundRobin.pick(excluding: excluding)
        case .leastRequest(let lr):
            return lr.pick(activeRequests: activeRequests, excluding: excluding, using: &rng)
        case .random(let table):
            return table.pick(excluding: excluding, using: &rng)
        case .ringHash(let ring):
            return ring.pick(hash: hash ?? rng.next(), excluding: excluding)
        case .maglev(let table):
            return table.pick(hash: hash ?? rng.next(), excluding: excluding)
        }
    }
}
