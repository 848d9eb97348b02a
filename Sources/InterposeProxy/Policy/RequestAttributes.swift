import InterposeConfig
import InterposeFlow
import InterposePolicy
import InterposeRouting
import NIOCore
import NIOHTTP1

/// Mixer's attributes of one request (or one TCP connection) over what the proxy already holds:
/// nothing is computed until the policy engine asks for it.
public struct RequestAttributes: AttributeSource {
    /// Nil for a TCP connection.
    let head: HTTPRequestHead?
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
        self.head = head
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

    public var requestMethod: String? { head?.method.rawValue }
    public var requestHost: String? { head?.headers.first(name: "host") }
    /// All values of the header, comma-joined as RFC 9110 5.3 allows (a repeated header is one list).
    public func requestHeader(_ lowercasedName: String) -> String? {
        guard let headers = head?.headers else { return nil }
        let values = headers[lowercasedName]
        return values.count > 1 ? values.joined(separator: ",") : values.first
    }

    /// The same query reading as routing's `queryParams` matches (name and value percent-decoded).
    public func requestQuery(_ name: String) -> String? {
        guard let uri = head?.uri else { return nil }
        return RequestView(method: "", pathAndQuery: uri, authority: "", port: 0, header: { _ in nil }).queryParameter(name)
    }

    public var isGRPC: Bool { head?.headers.first(name: "content-type")?.hasPrefix("application/grpc") ?? false }
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
