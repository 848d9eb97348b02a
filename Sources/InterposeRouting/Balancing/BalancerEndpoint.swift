/// One upstream endpoint as a load balancer sees it.
///
/// Matches an Envoy `LbEndpoint` (Istio: a `WorkloadEntry`/`ServiceEntry` endpoint or a Kubernetes
/// endpoint) reduced to what balancing needs: a stable identity and a load-balancing weight.
///
/// - `key` is the stable identity, normally `"ip:port"` (e.g. `"10.0.0.1:8080"`). Ring hash and
///   maglev hash this string exactly as Envoy hashes `host->address()->asString()`, so the same
///   endpoints land on the same ring/table positions as in an Envoy sidecar.
/// - `weight` is Envoy's `load_balancing_weight`; Envoy requires it to be >= 1, so 0 is treated as 1
///   (see ``effectiveWeight``).
public struct BalancerEndpoint: Hashable, Sendable {
    public var key: String
    public var weight: UInt32

    public init(key: String, weight: UInt32 = 1) {
        self.key = key
        self.weight = weight
    }

    /// The weight used for balancing: `weight`, with 0 treated as 1.
    @inlinable
    public var effectiveWeight: UInt32 { weight == 0 ? 1 : weight }
}
