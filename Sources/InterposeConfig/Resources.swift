import InterposeCapture
/// The configuration resources Interpose reads, as Istio writes them (networking.istio.io) plus
/// its own kinds (interpose.dev/v1alpha1). Plain values: decoding fills them, validation checks them,
/// and the routing module compiles them into a snapshot.

public struct ResourceMeta: Sendable, Equatable {
    public var name: String
    public var namespace: String
    public var annotations: [String: String] = [:]
    public var file: String
    public var document: Int
}

// MARK: - ServiceEntry

public enum Resolution: String, Sendable { case none = "NONE", staticAddresses = "STATIC", dns = "DNS", dnsRoundRobin = "DNS_ROUND_ROBIN" }

public struct ServicePort: Sendable, Equatable {
    public var number: UInt16
    public var protocolName: String
    public var name: String
    public var targetPort: UInt16?
    /// HTTP-family protocols are parsed per request; everything else is relayed as TCP.
    public var isHTTP: Bool { ["HTTP", "HTTP2", "GRPC", "HTTP_PROXY"].contains(protocolName.uppercased()) }
}

public struct WorkloadEntryEndpoint: Sendable, Equatable {
    public var address: String
    public var ports: [String: UInt16]
    public var labels: [String: String]
    public var weight: UInt32
    public var locality: String?
}

public struct ServiceEntry: Sendable, Equatable {
    public var meta: ResourceMeta
    public var hosts: [String]
    public var addresses: [String]
    public var ports: [ServicePort]
    public var location: String
    public var resolution: Resolution
    public var endpoints: [WorkloadEntryEndpoint]
}

// MARK: - VirtualService

public enum StringMatch: Sendable, Equatable {
    case exact(String)
    case prefix(String)
    case regex(String)
}

public struct HTTPMatchRequest: Sendable, Equatable {
    public var name: String?
    public var uri: StringMatch?
    public var scheme: StringMatch?
    public var method: StringMatch?
    public var authority: StringMatch?
    /// Header names lowercased; `nil` match means "present" (Istio's `{}`).
    public var headers: [(String, StringMatch?)] = []
    public var withoutHeaders: [(String, StringMatch?)] = []
    public var queryParams: [(String, StringMatch?)] = []
    public var port: UInt16?
    public var sourceLabels: [String: String] = [:]
    public var ignoreUriCase = false

    public static func == (a: HTTPMatchRequest, b: HTTPMatchRequest) -> Bool {
        a.name == b.name && a.uri == b.uri && a.scheme == b.scheme && a.method == b.method && a.authority == b.authority
            && a.headers.map(\.0) == b.headers.map(\.0) && a.headers.map(\.1) == b.headers.map(\.1)
            && a.withoutHeaders.map(\.0) == b.withoutHeaders.map(\.0) && a.queryParams.map(\.0) == b.queryParams.map(\.0)
            && a.port == b.port && a.sourceLabels == b.sourceLabels && a.ignoreUriCase == b.ignoreUriCase
    }
}

public struct Destination: Sendable, Equatable {
    public var host: String
    public var subset: String?
    public var port: UInt16?
    public init(host: String, subset: String? = nil, port: UInt16? = nil) {
        self.host = host
        self.subset = subset
        self.port = port
    }
}

public struct HeaderOperations: Sendable, Equatable {
    public var `set`: [(String, String)] = []
    public var add: [(String, String)] = []
    public var remove: [String] = []
    public var isEmpty: Bool { self.set.isEmpty && add.isEmpty && remove.isEmpty }

    public static func == (a: HeaderOperations, b: HeaderOperations) -> Bool {
        a.set.map(\.0) == b.set.map(\.0) && a.set.map(\.1) == b.set.map(\.1)
            && a.add.map(\.0) == b.add.map(\.0) && a.add.map(\.1) == b.add.map(\.1) && a.remove == b.remove
    }
}

public struct Headers: Sendable, Equatable {
    public var request = HeaderOperations()
    public var response = HeaderOperations()
}

public struct WeightedDestination: Sendable, Equatable {
    public var destination: Destination
    public var weight: UInt32
    public var headers: Headers
}

public struct HTTPRedirect: Sendable, Equatable {
    public var uri: String?
    public var authority: String?
    public var scheme: String?
    public var port: UInt16?
    public var code: Int
}

public struct HTTPRewrite: Sendable, Equatable {
    public var uri: String?
    public var authority: String?
    public var uriRegex: (match: String, rewrite: String)?

    public static func == (a: HTTPRewrite, b: HTTPRewrite) -> Bool {
        a.uri == b.uri && a.authority == b.authority && a.uriRegex?.match == b.uriRegex?.match && a.uriRegex?.rewrite == b.uriRegex?.rewrite
    }
}

public struct DirectResponse: Sendable, Equatable {
    public var status: Int
    public var body: String?
}

public struct Mirror: Sendable, Equatable {
    public var destination: Destination
    /// 0...100; Istio's default is 100 when a mirror is set.
    public var percent: Double
}

public struct HTTPRoute: Sendable, Equatable {
    public var name: String?
    public var matches: [HTTPMatchRequest]
    public var destinations: [WeightedDestination]
    public var redirect: HTTPRedirect?
    public var directResponse: DirectResponse?
    public var rewrite: HTTPRewrite?
    public var headers: Headers
    public var mirrors: [Mirror]
    /// Route timeout in seconds; nil = none (Istio's default, unlike Envoy's 15 s).
    public var timeout: Double?
}

public struct L4Match: Sendable, Equatable {
    public var destinationSubnets: [CIDR]
    public var port: UInt16?
    public var sourceLabels: [String: String]
}

public struct TCPRoute: Sendable, Equatable {
    public var matches: [L4Match]
    public var destinations: [WeightedDestination]
}

public struct VirtualService: Sendable, Equatable {
    public var meta: ResourceMeta
    public var hosts: [String]
    public var http: [HTTPRoute]
    public var tcp: [TCPRoute]
}

// MARK: - DestinationRule

public enum LoadBalancerSetting: Sendable, Equatable {
    case roundRobin, leastRequest, random, passthrough
    case consistentHash(HashKey, ringSize: Int?, maglev: Bool)

    public enum HashKey: Sendable, Equatable {
        case header(String)
        case cookie(name: String, path: String?, ttl: Double?)
        case sourceIP
        case queryParameter(String)
    }
}

public struct ConnectionPoolSettings: Sendable, Equatable {
    public var maxConnections: Int?
    public var connectTimeout: Double?
    /// connectionPool.tcp.idleTimeout: a TCP relay with no bytes either way for this long is closed.
    public var tcpIdleTimeout: Double?
    public var maxRequestsPerConnection: Int?
    public var idleTimeout: Double?
    public var http1MaxPendingRequests: Int?
}

public struct TrafficPolicy: Sendable, Equatable {
    public var loadBalancer: LoadBalancerSetting?
    public var connectionPool: ConnectionPoolSettings?
    public var portSettings: [UInt16: TrafficPolicy] = [:]
    public init() {}
}

public struct Subset: Sendable, Equatable {
    public var name: String
    public var labels: [String: String]
    public var trafficPolicy: TrafficPolicy?
}

public struct DestinationRule: Sendable, Equatable {
    public var meta: ResourceMeta
    public var host: String
    public var trafficPolicy: TrafficPolicy?
    public var subsets: [Subset]
}

// MARK: - Sidecar and ProxyConfig

public enum OutboundTrafficPolicy: String, Sendable { case allowAny = "ALLOW_ANY", registryOnly = "REGISTRY_ONLY" }

public struct Sidecar: Sendable, Equatable {
    public var meta: ResourceMeta
    public var outboundTrafficPolicy: OutboundTrafficPolicy?
}

/// This workload and the proxy's own settings (interpose.dev/v1alpha1 ProxyConfig).
public struct ProxySettings: Sendable, Equatable {
    public var workloadName = "unknown"
    public var namespace = "default"
    public var labels: [String: String] = [:]
    public var outboundPort: UInt16 = 15001
    public var inboundPort: UInt16 = 15006
    public var adminPort: UInt16 = 15000
    public var readinessPort: UInt16 = 15021
    public var metricsPort: UInt16 = 15090
    public var outboundTrafficPolicy: OutboundTrafficPolicy?
    public var drainTimeout: Double = 5
    public var accessLog = false
    /// Istio's optional mirror host suffix ("-shadow"); nil leaves the Host as it is (Istio's default now).
    public var mirrorHostSuffix: String?
    /// Seconds between re-resolutions of DNS ServiceEntries (Envoy's dns_refresh_rate default: 5 s).
    public var dnsRefreshInterval: Double = 5
    /// The Redis that holds Global rate limits (RateLimitPolicy scope Global), shared by every proxy.
    public var redis: RedisSettings?
    public init() {}
}

public struct RedisSettings: Sendable, Equatable {
    public var host: String
    public var port: Int
    /// Seconds; a few milliseconds, so a Redis outage costs requests little (failureMode then decides).
    public var connectTimeout: Double = 0.01
    public var commandTimeout: Double = 0.005
    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    /// `host:port` or `[v6]:port`; the port defaults to 6379.
    public static func parse(_ text: String) -> RedisSettings? {
        var host = text
        var port = 6379
        if text.hasPrefix("["), let close = text.firstIndex(of: "]") {
            host = String(text[text.index(after: text.startIndex)..<close])
            let rest = text[text.index(after: close)...]
            if rest.hasPrefix(":") { guard let p = Int(rest.dropFirst()), (1...65535).contains(p) else { return nil }; port = p }
            else if !rest.isEmpty { return nil }
        } else if let colon = text.lastIndex(of: ":"), text.filter({ $0 == ":" }).count == 1 {
            host = String(text[..<colon])
            guard let p = Int(text[text.index(after: colon)...]), (1...65535).contains(p) else { return nil }
            port = p
        }
        return host.isEmpty ? nil : RedisSettings(host: host, port: port)
    }
}
