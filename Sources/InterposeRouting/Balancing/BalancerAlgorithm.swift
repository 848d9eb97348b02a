/// Which load-balancing algorithm a ``LoadBalancer`` runs.
///
/// Matches Istio's `DestinationRule.trafficPolicy.loadBalancer`:
/// - `simple: ROUND_ROBIN` -> ``roundRobin`` (Envoy `ROUND_ROBIN`)
/// - `simple: LEAST_REQUEST` (Istio's default) -> ``leastRequest(choiceCount:)`` (Envoy
///   `LEAST_REQUEST`, `choice_count` default 2)
/// - `simple: RANDOM` -> ``random``
/// - `consistentHash` with `ringHash` (or the deprecated `minimumRingSize`) -> ``ringHash(minimumRingSize:maximumRingSize:)``
///   (Envoy `RING_HASH`, defaults 1024 / 8M)
/// - `consistentHash` with `maglev` -> ``maglev(tableSize:)`` (Envoy `MAGLEV`, default 65537)
///
/// `PASSTHROUGH` is not a balancing algorithm (the original destination is used) and is handled
/// by the caller.
public enum BalancerAlgorithm: Sendable, Equatable {
    case roundRobin
    case leastRequest(choiceCount: Int = 2)
    case random
    case ringHash(minimumRingSize: Int = 1024, maximumRingSize: Int = 8_388_608)
    case maglev(tableSize: Int = 65537)

    /// True for the consistent-hash algorithms (ring hash, maglev), which use the request hash.
    public var usesHash: Bool {
        switch self {
        case .ringHash, .maglev: return true
        case .roundRobin, .leastRequest, .random: return false
        }
    }
}
