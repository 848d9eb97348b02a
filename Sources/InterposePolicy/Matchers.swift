import InterposeCapture
import InterposeConfig
import InterposeFlow

// Compiled matchers: built once at config load, read by every check. String comparisons work on UTF-8
// bytes (no Unicode normalisation, no allocation), as Envoy's string matchers do.

/// One of Istio's value patterns: `abc` exact, `abc*` prefix, `*abc` suffix, `*` present.
struct BytePattern: Sendable, CustomStringConvertible {
    enum Kind: UInt8, Sendable { case exact, prefix, suffix, nonEmpty, present }
    let kind: Kind
    let bytes: [UInt8]
    /// Compare ASCII letters case-insensitively (`bytes` are lower-case).
    let ignoreCase: Bool
    let text: String

    /// Istio's reading of a value: `*` first (present), then a leading `*` (suffix), then a trailing `*` (prefix).
    /// `presentMatchesEmpty`: `*` also matches an empty value (headers: Envoy's present_match).
    init(istio value: String, ignoreCase: Bool = false, presentMatchesEmpty: Bool = false) {
        text = value
        self.ignoreCase = ignoreCase
        let v = ignoreCase ? value.lowercased() : value
        if v == "*" {
            kind = presentMatchesEmpty ? .present : .nonEmpty
            bytes = []
        } else if v.hasPrefix("*") {
            kind = .suffix
            bytes = Array(v.utf8.dropFirst())
        } else if v.hasSuffix("*") {
            kind = .prefix
            bytes = Array(v.utf8.dropLast())
        } else {
            kind = .exact
            bytes = Array(v.utf8)
        }
    }

    init(exact value: String, ignoreCase: Bool = false) {
        text = value
        self.ignoreCase = ignoreCase
        kind = .exact
        bytes = Array((ignoreCase ? value.lowercased() : value).utf8)
    }

    var description: String { text }

    func matches(_ value: String) -> Bool {
        switch kind {
        case .present: return true
        case .nonEmpty: return !value.isEmpty
        default:
            var v = value
            return v.withUTF8 { matches(bytes: $0) }
        }
    }

    func matches(bytes value: UnsafeBufferPointer<UInt8>) -> Bool {
        let n = bytes.count
        switch kind {
        case .present: return true
        case .nonEmpty: return value.count > 0
        case .exact: return value.count == n && equal(value, from: 0)
        case .prefix: return value.count >= n && equal(value, from: 0)
        case .suffix: return value.count >= n && equal(value, from: value.count - n)
        }
    }

    @inline(__always) private func equal(_ value: UnsafeBufferPointer<UInt8>, from start: Int) -> Bool {
        bytes.withUnsafeBufferPointer { p in
            var i = 0
            if ignoreCase {
                while i < p.count {
                    var c = value[start + i]
                    if c >= 65 && c <= 90 { c |= 0x20 }
                    if c != p[i] { return false }
                    i += 1
                }
            } else {
                while i < p.count {
                    if value[start + i] != p[i] { return false }
                    i += 1
                }
            }
            return true
        }
    }
}

/// A path value: one of Istio's patterns, or a template whose segments are literal, `{*}` (one segment)
/// or `{**}` (the rest, zero or more segments).
enum PathPattern: Sendable, CustomStringConvertible {
    case simple(BytePattern)
    case template([TemplateSegment], text: String)

    enum TemplateSegment: Sendable, Equatable { case literal([UInt8]), one, rest }

    init(_ value: String) {
        if value.contains("{") && pathTemplateProblem(value) == nil {
            let segments = value.split(separator: "/", omittingEmptySubsequences: false).map { s -> TemplateSegment in
                s == "{*}" ? .one : s == "{**}" ? .rest : .literal(Array(s.utf8))
            }
            self = .template(segments, text: value)
        } else {
            self = .simple(BytePattern(istio: value))
        }
    }

    var description: String {
        switch self {
        case .simple(let p): return p.text
        case .template(_, let text): return text
        }
    }

    func matches(_ path: String) -> Bool {
        switch self {
        case .simple(let p): return p.matches(path)
        case .template(let segments, _):
            var v = path
            return v.withUTF8 { Self.match(segments, $0) }
        }
    }

    private static func match(_ segments: [TemplateSegment], _ path: UnsafeBufferPointer<UInt8>) -> Bool {
        var pos = 0
        for (i, segment) in segments.enumerated() {
            if i > 0 {
                // The `/` before a segment is literal: `/a/{**}` matches `/a/` and `/a/b/c`, not `/a` (Envoy's templates).
                guard pos < path.count, path[pos] == UInt8(ascii: "/") else { return false }
                pos += 1
            }
            var end = pos
            while end < path.count && path[end] != UInt8(ascii: "/") { end += 1 }
            switch segment {
            case .rest: return true
            case .one:
                if end == pos { return false }
            case .literal(let bytes):
                guard end - pos == bytes.count else { return false }
                for j in 0..<bytes.count where path[pos + j] != bytes[j] { return false }
            }
            pos = end
        }
        return pos == path.count
    }
}

/// Prefixes of both families; empty matches nothing (unlike `AddressMatcher`, where empty means any).
struct IPSet: Sendable {
    let v4: PrefixTrie
    let v6: PrefixTrie
    init(_ prefixes: [CIDR]) {
        v4 = PrefixTrie(prefixes.filter { $0.family == .v4 })
        v6 = PrefixTrie(prefixes.filter { $0.family == .v6 })
    }
    var count: Int { v4.count + v6.count }
    @inline(__always) func contains(_ a: FlowAddress) -> Bool {
        a.isV6 ? (!v6.isEmpty && v6.contains(a)) : (!v4.isEmpty && v4.contains(a))
    }
}

/// The values of one field or condition, compiled for the attribute's kind.
enum ValueMatcher: Sendable, CustomStringConvertible {
    case strings([BytePattern])
    case paths([PathPattern])
    case addresses(IPSet, text: [String])
    case ports([UInt16])

    var description: String {
        switch self {
        case .strings(let p): return "[" + p.map(\.text).joined(separator: ", ") + "]"
        case .paths(let p): return "[" + p.map(\.description).joined(separator: ", ") + "]"
        case .addresses(_, let t): return "[" + t.joined(separator: ", ") + "]"
        case .ports(let p): return "[" + p.map { String($0) }.joined(separator: ", ") + "]"
        }
    }
}

/// One field of a rule: `attribute` must match one of `values` (if given) and none of `notValues`
/// (if given). An absent attribute matches no value, so it fails `values` and passes `notValues`.
struct Condition: Sendable {
    let field: String
    let attribute: PolicyAttribute
    let values: ValueMatcher?
    let notValues: ValueMatcher?
    var httpOnly: Bool { attribute.isHTTPOnly }

    init(field: String, attribute: PolicyAttribute, values: ValueMatcher?, notValues: ValueMatcher?) {
        self.field = field
        self.attribute = attribute
        self.values = values
        self.notValues = notValues
    }

    /// Istio's string fields: `values` / `notValues` as patterns, hosts case-insensitive.
    init?(field: String, attribute: PolicyAttribute, values: [String], notValues: [String]) {
        if values.isEmpty && notValues.isEmpty { return nil }
        func compile(_ list: [String]) -> ValueMatcher? {
            if list.isEmpty { return nil }
            switch attribute.valueKind {
            case .address:
                let cidrs = list.compactMap { try? CIDR.parse($0).get() }
                return .addresses(IPSet(cidrs), text: list)
            case .port:
                return .ports(list.compactMap { UInt16($0) })
            case .string:
                if attribute == .requestPath { return .paths(list.map(PathPattern.init)) }
                let ignoreCase = attribute == .requestHost
                var presentMatchesEmpty = false
                if case .requestHeader = attribute { presentMatchesEmpty = true }
                return .strings(list.map { BytePattern(istio: $0, ignoreCase: ignoreCase, presentMatchesEmpty: presentMatchesEmpty) })
            }
        }
        self.init(field: field, attribute: attribute, values: compile(values), notValues: compile(notValues))
    }

    init?(field: String, attribute: PolicyAttribute, cidrs: [CIDR], notCIDRs: [CIDR]) {
        if cidrs.isEmpty && notCIDRs.isEmpty { return nil }
        self.init(field: field, attribute: attribute,
                  values: cidrs.isEmpty ? nil : .addresses(IPSet(cidrs), text: cidrs.map(\.description)),
                  notValues: notCIDRs.isEmpty ? nil : .addresses(IPSet(notCIDRs), text: notCIDRs.map(\.description)))
    }

    init?(field: String, ports: [UInt16], notPorts: [UInt16]) {
        if ports.isEmpty && notPorts.isEmpty { return nil }
        self.init(field: field, attribute: .destinationPort, values: ports.isEmpty ? nil : .ports(ports), notValues: notPorts.isEmpty ? nil : .ports(notPorts))
    }

    func matches(_ a: some AttributeSource, _ cache: inout AttributeCache) -> Bool {
        if let values, !Self.matches(values, attribute, a, &cache) { return false }
        if let notValues, Self.matches(notValues, attribute, a, &cache) { return false }
        return true
    }

    @inline(__always)
    private static func matches(_ m: ValueMatcher, _ attribute: PolicyAttribute, _ a: some AttributeSource, _ cache: inout AttributeCache) -> Bool {
        switch m {
        case .ports(let ports):
            guard let p = cache.destinationPort(a) else { return false }
            return ports.contains(p)
        case .addresses(let set, _):
            guard let addr = cache.address(attribute, a) else { return false }
            return set.contains(addr)
        case .strings(let patterns):
            guard let v = cache.string(attribute, a) else { return false }
            for p in patterns where p.matches(v) { return true }
            return false
        case .paths(let patterns):
            guard let v = cache.string(attribute, a) else { return false }
            for p in patterns where p.matches(v) { return true }
            return false
        }
    }

    var explanation: String {
        var parts: [String] = []
        if let values { parts.append("\(field) \(values)") }
        if let notValues { parts.append("not \(field) \(notValues)") }
        return parts.joined(separator: " and ")
    }
}

/// How a rule treats HTTP-only fields on a TCP connection, as Istio generates its TCP filters.
enum TCPFieldHandling: Sendable {
    /// ALLOW (and rate limits): a rule with an HTTP-only field never matches a TCP connection (a smaller allow).
    case ruleNeverMatches
    /// DENY, AUDIT, CUSTOM: HTTP-only fields are left out of the rule, the rest decides (a wider deny).
    case fieldIgnored
}

/// An AuthorizationPolicy rule (or a RateLimitPolicy's): one of `from` (each a conjunction), one of `to`,
/// and every `when`.
struct MatchRule: Sendable {
    let label: String
    let from: [[Condition]]
    let to: [[Condition]]
    let when: [Condition]
    let usesHTTPFields: Bool

    init(_ rule: AuthorizationRule, label: String) {
        self.label = label
        from = rule.from.map { s in
            [
                Condition(field: "principals", attribute: .sourcePrincipal, values: s.principals, notValues: s.notPrincipals),
                Condition(field: "requestPrincipals", attribute: .requestAuth("principal"), values: s.requestPrincipals, notValues: s.notRequestPrincipals),
                Condition(field: "namespaces", attribute: .sourceNamespace, values: s.namespaces, notValues: s.notNamespaces),
                Condition(field: "serviceAccounts", attribute: .sourceServiceAccount, values: s.serviceAccounts, notValues: s.notServiceAccounts),
                Condition(field: "ipBlocks", attribute: .sourceIP, cidrs: s.ipBlocks, notCIDRs: s.notIpBlocks),
                Condition(field: "remoteIpBlocks", attribute: .remoteIP, cidrs: s.remoteIpBlocks, notCIDRs: s.notRemoteIpBlocks),
            ].compactMap { $0 }
        }
        to = rule.to.map { o in
            [
                Condition(field: "ports", ports: o.ports, notPorts: o.notPorts),
                Condition(field: "methods", attribute: .requestMethod, values: o.methods, notValues: o.notMethods),
                Condition(field: "paths", attribute: .requestPath, values: o.paths, notValues: o.notPaths),
                Condition(field: "hosts", attribute: .requestHost, values: o.hosts, notValues: o.notHosts),
            ].compactMap { $0 }
        }
        when = rule.when.compactMap { Condition(field: $0.key, attribute: $0.attribute, values: $0.values, notValues: $0.notValues) }
        usesHTTPFields = from.joined().contains { $0.httpOnly } || to.joined().contains { $0.httpOnly } || when.contains { $0.httpOnly }
    }

    func matches(_ a: some AttributeSource, _ cache: inout AttributeCache, tcp: TCPFieldHandling) -> Bool {
        let skipHTTP = !cache.isHTTP
        if skipHTTP && usesHTTPFields && tcp == .ruleNeverMatches { return false }
        for c in when where !(skipHTTP && c.httpOnly) {
            if !c.matches(a, &cache) { return false }
        }
        if !to.isEmpty && !Self.any(to, a, &cache, skipHTTP: skipHTTP) { return false }
        if !from.isEmpty && !Self.any(from, a, &cache, skipHTTP: skipHTTP) { return false }
        return true
    }

    private static func any(_ groups: [[Condition]], _ a: some AttributeSource, _ cache: inout AttributeCache, skipHTTP: Bool) -> Bool {
        outer: for group in groups {
            for c in group where !(skipHTTP && c.httpOnly) {
                if !c.matches(a, &cache) { continue outer }
            }
            return true
        }
        return false
    }

    /// The rule in words, for `interpose explain`.
    var explanation: String {
        var parts: [String] = []
        if !from.isEmpty { parts.append("from " + from.map { g in g.isEmpty ? "any" : g.map(\.explanation).joined(separator: " and ") }.joined(separator: " or ")) }
        if !to.isEmpty { parts.append("to " + to.map { g in g.isEmpty ? "any" : g.map(\.explanation).joined(separator: " and ") }.joined(separator: " or ")) }
        if !when.isEmpty { parts.append("when " + when.map(\.explanation).joined(separator: " and ")) }
        return parts.isEmpty ? "{} (everything)" : parts.joined(separator: "; ")
    }
}
