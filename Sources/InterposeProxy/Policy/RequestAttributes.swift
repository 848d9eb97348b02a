import InterposeConfig
import InterposeFlow
import InterposeHTTP1
import InterposePolicy
import InterposeRouting
import NIOCore
import NIOHTTP1

/// Mixer's attributes of one request (or one TCP connection) over what the proxy already holds:
/// nothing is computed until the policy engine asks for it.
public struct RequestAttributes: AttributeSource {
    /// Nil for a TCP connection.
    let head: PolicyRequestHead?
    let client: SocketAddress?
    let workload: ProxySettings
    /// Outbound: this workload is the source. Inbound: the peer is.
    let outbound: Bool
    let service: String?
    let port: UInt16?
    let cluster: Cluster?
    /// The address the client dialled (before capture), and the TLS server name when a ClientHello was read.
    var originalDestination: SocketAddress? = nil
    var serverName: String? = nil

    public var destinationAddress: FlowAddress? { originalDestination.flatMap(FlowAddress.init(socketAddress:)) }
    public var connectionSNI: String? { serverName }

    public init(head: HTTPRequestHead?, client: SocketAddress?, workload: ProxySettings, outbound: Bool, service: String?, port: UInt16?, cluster: Cluster?) {
        self.init(request: head.map { .nio($0) }, client: client, workload: workload, outbound: outbound, service: service, port: port, cluster: cluster)
    }

    /// A request whose head is still in its received bytes (the proxy's request path): fields are
    /// read when a rule asks for them.
    init(raw: RawRequestHead, uri: String, client: SocketAddress?, workload: ProxySettings, outbound: Bool, service: String?, port: UInt16?,
         cluster: Cluster?) {
        self.init(request: .raw(raw, uri: uri), client: client, workload: workload, outbound: outbound, service: service, port: port, cluster: cluster)
    }

    init(request: PolicyRequestHead?, client: SocketAddress?, workload: ProxySettings, outbound: Bool, service: String?, port: UInt16?, cluster: Cluster?) {
        self.head = request
        self.client = client
        self.workload = workload
        self.outbound = outbound
        self.service = service
        self.port = port
        self.cluster = cluster
    }

    public var sourceAddress: FlowAddress? { client.flatMap(FlowAddress.init(socketAddress:)) }
    public var sourcePrincipal: String? { nil }
    public var sourceNamespace: String? { outbound ? workload.namespace : nil }
    public func sourceLabel(_ key: String) -> String? { outbound ? workload.labels[key] : nil }
    public var destinationService: String? { service }
    public var destinationPort: UInt16? { port }

    /// A label every endpoint of the destination cluster (or subset) carries with one value.
    public func destinationLabel(_ key: String) -> String? {
        if !outbound { return workload.labels[key] } // inbound: this workload is the destination
        guard let endpoints = cluster?.endpoints, let first = endpoints.first?.labels[key] else { return nil }
        return endpoints.allSatisfy { $0.labels[key] == first } ? first : nil
    }

    public var isHTTP: Bool { head != nil }

    public var requestPath: String? {
        guard let uri = head?.uri else { return nil }
        guard let q = uri.utf8.firstIndex(of: UInt8(ascii: "?")) else { return uri }
        return String(uri[..<q])
    }

    public var requestMethod: String? { head?.method }
    public var requestHost: String? { head?.first("host") }
    /// All values of the header, comma-joined as RFC 9110 5.3 allows (a repeated header is one list).
    public func requestHeader(_ lowercasedName: String) -> String? {
        guard let values = head?.values(lowercasedName) else { return nil }
        return values.count > 1 ? values.joined(separator: ",") : values.first
    }

    /// The same query reading as routing's `queryParams` matches (name and value percent-decoded).
    public func requestQuery(_ name: String) -> String? {
        guard let uri = head?.uri else { return nil }
        return RequestView(method: "", pathAndQuery: uri, authority: "", port: 0, header: { _ in nil }).queryParameter(name)
    }

    public var isGRPC: Bool { head?.first("content-type")?.hasPrefix("application/grpc") ?? false }
}

/// The request head policy reads: NIO's (h2c bridge tests, `explain`) or the proxy's raw one.
enum PolicyRequestHead {
    case nio(HTTPRequestHead)
    /// With the target as routed (normalized).
    case raw(RawRequestHead, uri: String)

    var uri: String {
        switch self {
        case .nio(let h): return h.uri
        case .raw(_, let uri): return uri
        }
    }

    var method: String {
        switch self {
        case .nio(let h): return h.method.rawValue
        case .raw(let r, _): return r.method.rawValue
        }
    }

    func first(_ name: String) -> String? {
        switch self {
        case .nio(let h): return h.headers.first(name: name)
        case .raw(let r, _): return r.fields.first(name)
        }
    }

    func values(_ name: String) -> [String] {
        switch self {
        case .nio(let h): return h.headers[name]
        case .raw(let r, _): return r.fields.values(name)
        }
    }
}


extension RequestAttributes {
    /// For `interpose explain`: a request described on the command line.
    public static func described(method: String, uri: String, headers: [(String, String)], sourceAddress: String?,
                                 workload: ProxySettings, service: String?, port: UInt16?, cluster: Cluster?) -> RequestAttributes {
        var h = HTTPHeaders()
        for (k, v) in headers { h.add(name: k, value: v) }
        let head = HTTPRequestHead(version: .http1_1, method: HTTPMethod(rawValue: method), uri: uri, headers: h)
        let client = sourceAddress.flatMap { try? SocketAddress(ipAddress: $0, port: 0) }
        return RequestAttributes(head: head, client: client, workload: workload, outbound: true, service: service, port: port, cluster: cluster)
    }
}

extension FlowAddress {
    /// Straight from the socket address's bytes: no text on the request path.
    init?(socketAddress: SocketAddress) {
        switch socketAddress {
        case .v4(let a):
            self.init(v4: UInt32(bigEndian: a.address.sin_addr.s_addr))
        case .v6(let a):
            let (high, low) = withUnsafeBytes(of: a.address.sin6_addr) { raw in
                (raw.loadUnaligned(fromByteOffset: 0, as: UInt64.self).bigEndian, raw.loadUnaligned(fromByteOffset: 8, as: UInt64.self).bigEndian)
            }
            self.init(v6High: high, v6Low: low)
        default:
            return nil
        }
    }
}
