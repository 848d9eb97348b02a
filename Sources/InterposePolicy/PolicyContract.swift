import InterposeFlow

// The contract between the policy engine (this module, pure), the proxy (which supplies request
// attributes and acts on verdicts) and the shared-quota backend (InterposeRedis).

/// Mixer's attribute vocabulary, read lazily: the proxy implements this over the request it
/// already holds, and a check that reads two attributes computes only those two.
public protocol AttributeSource {
    /// `source.ip`: the downstream peer for inbound traffic, this workload's address for outbound.
    var sourceAddress: FlowAddress? { get }
    /// `source.principal` (no mTLS identity here yet: nil).
    var sourcePrincipal: String? { get }
    /// `source.namespace`
    var sourceNamespace: String? { get }
    /// `source.labels[key]`
    func sourceLabel(_ key: String) -> String?
    /// `destination.service` (host name, e.g. `reviews.default.svc.cluster.local` or `reviews`)
    var destinationService: String? { get }
    /// `destination.port`
    var destinationPort: UInt16? { get }
    /// `destination.labels[key]`
    func destinationLabel(_ key: String) -> String?
    /// False for a TCP connection: request.* attributes are then all nil.
    var isHTTP: Bool { get }
    /// `request.path` without the query string.
    var requestPath: String? { get }
    /// `request.method`
    var requestMethod: String? { get }
    /// `request.host` (the Host / :authority header, port included if given).
    var requestHost: String? { get }
    /// `request.headers[name]`, name lower-case.
    func requestHeader(_ lowercasedName: String) -> String?
    /// `request.query[name]`
    func requestQuery(_ name: String) -> String?
    /// The request is gRPC (content-type application/grpc...): denials use grpc-status.
    var isGRPC: Bool { get }
    /// `destination.ip`: the original destination of the connection (absent by default).
    var destinationAddress: FlowAddress? { get }
    /// `connection.sni`: the TLS server name the client asked for, when a ClientHello was read.
    var connectionSNI: String? { get }
}

/// A shared (Global scope) quota to take one unit from, asked of the backend.
public struct GlobalQuotaRequest: Sendable, Equatable {
    /// Redis key, hash-tagged so one descriptor value lives on one Redis Cluster slot:
    /// `interpose:rl:{<namespace>/<policy>/<rule>/<descriptor values>}`.
    public var key: String
    /// Requests allowed per period.
    public var limit: Int
    /// The period in seconds (1 for SECOND, 60 for MINUTE, 3600 for HOUR, 86400 for DAY).
    public var period: Double
    /// Extra requests allowed at once above the steady rate (GCRA burst tolerance), >= 0.
    public var burst: Int
    public init(key: String, limit: Int, period: Double, burst: Int) {
        self.key = key
        self.limit = limit
        self.period = period
        self.burst = burst
    }
}

/// The backend's answer for one GlobalQuotaRequest.
public enum GlobalQuotaAnswer: Sendable, Equatable {
    /// Allowed or refused by the shared quota: remaining units, seconds until one more unit is
    /// available (retryAfter, 0 when allowed), seconds until the quota is whole again (reset).
    case decided(allowed: Bool, remaining: Int, retryAfter: Double, reset: Double)
    /// Redis could not answer (down, timeout, circuit open): the policy's failureMode decides.
    case backendFailed(reason: String)
}
