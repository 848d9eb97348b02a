import InterposeConfig
import InterposeFlow

/// Without them, `destination.ip` and `connection.sni` are absent (values never match, notValues always do).
extension AttributeSource {
    /// Sources that do not know `destination.ip` / `connection.sni` leave them absent.
    public var destinationAddress: FlowAddress? { nil }
    public var connectionSNI: String? { nil }
}

/// An attribute as the compiled program names it: a kind and, for keyed ones (headers, labels, query), the
/// slot of the key in the program's key table. A trivial value: free to copy on the hot path.
enum AttrKind: UInt8, Sendable {
    case sourceIP, remoteIP, principal, namespace, serviceAccount, sourceLabel
    case destinationService, destinationPort, destinationIP, destinationLabel
    case path, method, host, header, query, auth, sni
}

struct AttrRef: Sendable, Equatable {
    var kind: AttrKind
    var slot: Int32

    var isHTTPOnly: Bool {
        switch kind {
        case .path, .method, .host, .header, .query, .auth: return true
        default: return false
        }
    }

    var isAddress: Bool { kind == .sourceIP || kind == .remoteIP || kind == .destinationIP }
}

/// The attributes one check has read so far: each fixed attribute is asked of the source at most once,
/// whatever the number of rules that look at it; the last two keyed lookups (headers) are kept too.
struct AttributeCache {
    let isHTTP: Bool
    /// The program's key table (header names, label keys, query names), by slot.
    let keys: UnsafeBufferPointer<String>
    private var path: String?? = nil
    private var method: String?? = nil
    private var host: String?? = nil
    private var address: FlowAddress?? = nil
    private var port: UInt16?? = nil
    private var principal: String?? = nil
    private var namespace: String?? = nil
    private var service: String?? = nil
    private var slotA: Int32 = -1
    private var valueA: String? = nil
    private var slotB: Int32 = -1
    private var valueB: String? = nil

    init(isHTTP: Bool, keys: UnsafeBufferPointer<String>) {
        self.isHTTP = isHTTP
        self.keys = keys
    }

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

    mutating func address(_ r: AttrRef, _ a: some AttributeSource) -> FlowAddress? {
        switch r.kind {
        case .sourceIP, .remoteIP: return sourceAddress(a)
        case .destinationIP: return a.destinationAddress
        default: return string(r, a).flatMap { FlowAddress($0) }
        }
    }

    private mutating func header(_ slot: Int32, _ a: some AttributeSource) -> String? {
        if slot == slotA { return valueA }
        if slot == slotB { return valueB }
        let v = a.requestHeader(keys[Int(slot)])
        slotB = slotA
        valueB = valueA
        slotA = slot
        valueA = v
        return v
    }

    /// The attribute as text (addresses and ports formatted), nil when absent.
    mutating func string(_ r: AttrRef, _ a: some AttributeSource) -> String? {
        switch r.kind {
        case .path:
            guard isHTTP else { return nil }
            if let v = path { return v }
            let v = a.requestPath
            path = .some(v)
            return v
        case .method:
            guard isHTTP else { return nil }
            if let v = method { return v }
            let v = a.requestMethod
            method = .some(v)
            return v
        case .host:
            guard isHTTP else { return nil }
            if let v = host { return v }
            let v = a.requestHost
            host = .some(v)
            return v
        case .header:
            return isHTTP ? header(r.slot, a) : nil
        case .query:
            return isHTTP ? a.requestQuery(keys[Int(r.slot)]) : nil
        case .auth:
            return nil
        case .principal:
            if let v = principal { return v }
            let v = a.sourcePrincipal
            principal = .some(v)
            return v
        case .namespace:
            if let v = namespace { return v }
            let v = a.sourceNamespace
            namespace = .some(v)
            return v
        case .serviceAccount:
            return string(AttrRef(kind: .principal, slot: -1), a).flatMap(serviceAccount(ofPrincipal:))
        case .sourceLabel: return a.sourceLabel(keys[Int(r.slot)])
        case .destinationLabel: return a.destinationLabel(keys[Int(r.slot)])
        case .destinationService:
            if let v = service { return v }
            let v = a.destinationService
            service = .some(v)
            return v
        case .destinationPort: return destinationPort(a).map { String($0) }
        case .sourceIP, .remoteIP, .destinationIP: return address(r, a).map(addressText)
        case .sni: return a.connectionSNI
        }
    }
}

/// `cluster.local/ns/shop/sa/checkout` -> `shop/checkout` (Istio's source.serviceAccount).
func serviceAccount(ofPrincipal p: String) -> String? {
    let parts = p.split(separator: "/", omittingEmptySubsequences: false)
    guard let ns = parts.firstIndex(of: "ns"), ns + 3 < parts.count, parts[ns + 2] == "sa" else { return nil }
    return "\(parts[ns + 1])/\(parts[ns + 3])"
}

/// An address as text; IPv4 written straight into a small (inline, unallocated) string.
func addressText(_ a: FlowAddress) -> String {
    guard !a.isV6 else { return a.description }
    return String(unsafeUninitializedCapacity: 15) { buffer in
        var n = 0
        for shift in stride(from: 24, through: 0, by: -8) {
            let octet = Int((a.low >> UInt64(shift)) & 0xFF)
            if octet >= 100 { buffer[n] = UInt8(48 + octet / 100); n += 1 }
            if octet >= 10 { buffer[n] = UInt8(48 + (octet / 10) % 10); n += 1 }
            buffer[n] = UInt8(48 + octet % 10)
            n += 1
            if shift > 0 { buffer[n] = UInt8(ascii: "."); n += 1 }
        }
        return n
    }
}
