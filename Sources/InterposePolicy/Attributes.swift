import InterposeConfig
import InterposeFlow

/// Attributes of a connection that `AttributeSource` does not carry: a proxy that knows them conforms to this
/// too. Without it, `destination.ip` and `connection.sni` are absent (values never match, notValues always do).
public protocol ConnectionAttributeSource: AttributeSource {
    /// `destination.ip`: the original destination of the connection.
    var destinationAddress: FlowAddress? { get }
    /// `connection.sni`: the TLS server name the client asked for, if the proxy read a ClientHello.
    var connectionSNI: String? { get }
}

/// The attributes one check has read so far: each fixed attribute is asked of the source at most once,
/// whatever the number of rules that look at it. Keyed ones (headers, labels, query) keep the last lookup.
struct AttributeCache {
    let isHTTP: Bool
    private var path: String?? = nil
    private var method: String?? = nil
    private var host: String?? = nil
    private var address: FlowAddress?? = nil
    private var port: UInt16?? = nil
    private var principal: String?? = nil
    private var namespace: String?? = nil
    private var service: String?? = nil
    private var lastHeaderName: String? = nil
    private var lastHeader: String? = nil

    init(isHTTP: Bool) { self.isHTTP = isHTTP }

    mutating func sourceAddress(_ a: some AttributeSource) -> FlowAddress? {
        if let v = address { return v }
        let v = a.sourceAddress
        address = .some(v)
        return v
    }

    mutating func destinationPort(_ a: some AttributeSource) -> UInt16? {
        if let v = port { return v }
        let v = a.destinationPort
        port = .some(v)
        return v
    }

    mutating func address(_ attribute: PolicyAttribute, _ a: some AttributeSource) -> FlowAddress? {
        switch attribute {
        case .sourceIP, .remoteIP: return sourceAddress(a)
        case .destinationIP: return (a as? any ConnectionAttributeSource)?.destinationAddress
        default: return string(attribute, a).flatMap { FlowAddress($0) }
        }
    }

    /// The attribute as text (addresses and ports formatted), nil when absent.
    mutating func string(_ attribute: PolicyAttribute, _ a: some AttributeSource) -> String? {
        switch attribute {
        case .requestPath:
            guard isHTTP else { return nil }
            if let v = path { return v }
            let v = a.requestPath
            path = .some(v)
            return v
        case .requestMethod:
            guard isHTTP else { return nil }
            if let v = method { return v }
            let v = a.requestMethod
            method = .some(v)
            return v
        case .requestHost:
            guard isHTTP else { return nil }
            if let v = host { return v }
            let v = a.requestHost
            host = .some(v)
            return v
        case .requestHeader(let name):
            guard isHTTP else { return nil }
            if lastHeaderName == name { return lastHeader }
            let v = a.requestHeader(name)
            lastHeaderName = name
            lastHeader = v
            return v
        case .requestQuery(let name):
            return isHTTP ? a.requestQuery(name) : nil
        case .requestAuth:
            return nil
        case .sourcePrincipal:
            if let v = principal { return v }
            let v = a.sourcePrincipal
            principal = .some(v)
            return v
        case .sourceNamespace:
            if let v = namespace { return v }
            let v = a.sourceNamespace
            namespace = .some(v)
            return v
        case .sourceServiceAccount:
            return string(.sourcePrincipal, a).flatMap(serviceAccount(ofPrincipal:))
        case .sourceLabel(let k): return a.sourceLabel(k)
        case .destinationLabel(let k): return a.destinationLabel(k)
        case .destinationService:
            if let v = service { return v }
            let v = a.destinationService
            service = .some(v)
            return v
        case .destinationPort: return destinationPort(a).map { String($0) }
        case .sourceIP, .remoteIP, .destinationIP: return address(attribute, a)?.description
        case .connectionSNI: return (a as? any ConnectionAttributeSource)?.connectionSNI
        }
    }
}

/// `cluster.local/ns/shop/sa/checkout` -> `shop/checkout` (Istio's source.serviceAccount).
func serviceAccount(ofPrincipal p: String) -> String? {
    let parts = p.split(separator: "/", omittingEmptySubsequences: false)
    guard let ns = parts.firstIndex(of: "ns"), ns + 3 < parts.count, parts[ns + 2] == "sa" else { return nil }
    return "\(parts[ns + 1])/\(parts[ns + 3])"
}
