import InterposeConfig

/// Istio's cluster identity: `outbound|9080|v1|reviews.default.svc.cluster.local`.
public struct ClusterKey: Hashable, Sendable, CustomStringConvertible {
    public var host: String
    public var subset: String?
    public var port: UInt16
    public var description: String { "outbound|\(port)|\(subset ?? "")|\(host)" }
    public init(host: String, subset: String?, port: UInt16) {
        self.host = host
        self.subset = subset
        self.port = port
    }
}

public struct Endpoint: Hashable, Sendable, CustomStringConvertible {
    public let address: String
    public let port: UInt16
    public var weight: UInt32
    public var labels: [String: String]
    /// `address:port` (`[v6]:port`), made once: the data path keys active-request counts and pools by it.
    public let description: String

    public init(address: String, port: UInt16, weight: UInt32, labels: [String: String]) {
        self.address = address
        self.port = port
        self.weight = weight
        self.labels = labels
        description = hostPort(address, port)
    }
}

/// `host:port`, or `[host]:port` for an IPv6 literal.
public func hostPort(_ host: String, _ port: UInt16) -> String {
    host.utf8.contains(UInt8(ascii: ":")) ? "[\(host)]:\(port)" : "\(host):\(port)"
}

/// Where a cluster's traffic goes and how it is balanced. Immutable; balancing state lives per event loop.
/// A class: every request holds its cluster, and a reference costs one retain where a copy of this
/// struct's fields cost one per field.
public final class Cluster: Sendable {
    public let key: ClusterKey
    public let endpoints: [Endpoint]
    /// Resolution NONE / PASSTHROUGH: connect to the client's original destination.
    public let usesOriginalDestination: Bool
    public let loadBalancer: LoadBalancerSetting
    public let connectTimeout: Double
    public let maxRequestsPerConnection: Int?
    public let idleTimeout: Double
    /// TCP relays: closed after this long without traffic (Istio's default: 1 hour).
    public let tcpIdleTimeout: Double
    public let isHTTP: Bool
    /// This service's labels for telemetry (destination_service_name / _namespace).
    public let serviceName: String
    public let serviceNamespace: String
    /// Unique within one table (-1: made on the fly, not in a table): per-loop balancers are kept under it.
    public let id: Int

    public init(key: ClusterKey, endpoints: [Endpoint], usesOriginalDestination: Bool, loadBalancer: LoadBalancerSetting, connectTimeout: Double,
                maxRequestsPerConnection: Int?, idleTimeout: Double, tcpIdleTimeout: Double = 3600, isHTTP: Bool, serviceName: String,
                serviceNamespace: String, id: Int = -1) {
        self.key = key
        self.endpoints = endpoints
        self.usesOriginalDestination = usesOriginalDestination
        self.loadBalancer = loadBalancer
        self.connectTimeout = connectTimeout
        self.maxRequestsPerConnection = maxRequestsPerConnection
        self.idleTimeout = idleTimeout
        self.tcpIdleTimeout = tcpIdleTimeout
        self.isHTTP = isHTTP
        self.serviceName = serviceName
        self.serviceNamespace = serviceNamespace
        self.id = id
    }
}

/// What a ServiceEntry host compiles to.
public struct ServiceInfo: Sendable {
    public var host: String
    public var namespace: String
    public var ports: [ServicePort]
    public var resolution: Resolution
    public var endpoints: [WorkloadEntryEndpoint]

    /// The service port for a requested port number: exact, else the only one.
    public func port(_ number: UInt16?) -> ServicePort? {
        if let number, let p = ports.first(where: { $0.number == number }) { return p }
        return ports.count == 1 ? ports[0] : nil
    }
}
