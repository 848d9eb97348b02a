import InterposeCapture
import InterposeConfig
import InterposeFlow

// The compiled rules of one engine: flat tables of trivial values (no reference counting while a check
// walks them), pattern bytes in one arena, address prefixes in tries. String comparisons work on UTF-8
// bytes (no Unicode normalisation, no allocation), as Envoy's string matchers do.

/// One of Istio's value patterns over the byte arena: `abc` exact, `abc*` prefix, `*abc` suffix, `*` present,
/// or a path template (`start` indexes the template table).
struct Pattern: Sendable {
    enum Kind: UInt8, Sendable { case exact, prefix, suffix, nonEmpty, present, template }
    var kind: Kind
    var ignoreCase: Bool
    var start: Int32
    var count: Int32
}

/// The values of one field or condition: patterns, ports (ranges of the tables) or an address set.
struct ValueSet: Sendable {
    enum Kind: UInt8, Sendable { case none, patterns, ports, addresses }
    var kind: Kind
    var start: Int32
    var count: Int32
    static let none = ValueSet(kind: .none, start: 0, count: 0)
}

/// One field of a rule: the attribute must match one of `values` (if given) and none of `notValues` (if
/// given). An absent attribute matches no value, so it fails `values` and passes `notValues`.
struct Cond: Sendable {
    var attr: AttrRef
    var values: ValueSet
    var notValues: ValueSet
}

/// A conjunction of conditions: a range of the condition table.
struct Group: Sendable {
    var start: Int32
    var count: Int32
}

/// A rule: every `when` condition, one of the `from` groups (if any) and one of the `to` groups (if any).
struct Rule: Sendable {
    var whenStart: Int32
    var whenCount: Int32
    var fromStart: Int32
    var fromCount: Int32
    var toStart: Int32
    var toCount: Int32
    var usesHTTPFields: Bool
}

enum TemplateSegment: Sendable, Equatable { case literal([UInt8]), one, rest }

/// How a rule treats HTTP-only fields on a TCP connection, as Istio generates its TCP filters.
enum TCPFieldHandling: Sendable {
    /// ALLOW (and rate limits): a rule with an HTTP-only field never matches a TCP connection (a smaller allow).
    case ruleNeverMatches
    /// DENY, AUDIT, CUSTOM: HTTP-only fields are left out of the rule, the rest decides (a wider deny).
    case fieldIgnored
}

/// Fixed-size storage that never moves and is never copied: read through raw pointers on the hot path.
final class Table<T>: @unchecked Sendable { // immutable after init
    let buffer: UnsafeMutableBufferPointer<T>
    init(_ items: [T]) {
        let storage = UnsafeMutableBufferPointer<T>.allocate(capacity: max(1, items.count))
        _ = storage.initialize(from: items)
        buffer = UnsafeMutableBufferPointer(start: storage.baseAddress, count: items.count)
    }
    var count: Int { buffer.count }
    deinit {
        buffer.baseAddress!.deinitialize(count: buffer.count)
        buffer.baseAddress!.deallocate()
    }
    @inline(__always) subscript(i: Int) -> T { buffer[i] }
}

/// Builds a program rule by rule at config load.
final class ProgramBuilder {
    private(set) var bytes: [UInt8] = []
    private(set) var patterns: [Pattern] = []
    private(set) var templates: [[TemplateSegment]] = []
    private(set) var ipSets: [IPSet] = []
    private(set) var ports: [UInt16] = []
    private(set) var keys: [String] = []
    private var keySlots: [String: Int32] = [:]
    private(set) var conds: [Cond] = []
    private(set) var groups: [Group] = []
    private(set) var rules: [Rule] = []

    func ref(_ a: PolicyAttribute) -> AttrRef {
        func slot(_ key: String) -> Int32 {
            if let s = keySlots[key] { return s }
            keys.append(key)
            let s = Int32(keys.count - 1)
            keySlots[key] = s
            return s
        }
        switch a {
        case .sourceIP: return AttrRef(kind: .sourceIP, slot: -1)
        case .remoteIP: return AttrRef(kind: .remoteIP, slot: -1)
        case .sourcePrincipal: return AttrRef(kind: .principal, slot: -1)
        case .sourceNamespace: return AttrRef(kind: .namespace, slot: -1)
        case .sourceServiceAccount: return AttrRef(kind: .serviceAccount, slot: -1)
        case .sourceLabel(let k): return AttrRef(kind: .sourceLabel, slot: slot(k))
        case .destinationService: return AttrRef(kind: .destinationService, slot: -1)
        case .destinationPort: return AttrRef(kind: .destinationPort, slot: -1)
        case .destinationIP: return AttrRef(kind: .destinationIP, slot: -1)
        case .destinationLabel(let k): return AttrRef(kind: .destinationLabel, slot: slot(k))
        case .requestPath: return AttrRef(kind: .path, slot: -1)
        case .requestMethod: return AttrRef(kind: .method, slot: -1)
        case .requestHost: return AttrRef(kind: .host, slot: -1)
        case .requestHeader(let k): return AttrRef(kind: .header, slot: slot(k))
        case .requestQuery(let k): return AttrRef(kind: .query, slot: slot(k))
        case .requestAuth: return AttrRef(kind: .auth, slot: -1)
        case .connectionSNI: return AttrRef(kind: .sni, slot: -1)
        }
    }

    /// Istio's reading of a value: `*` first (present), then a leading `*` (suffix), then a trailing `*` (prefix).
    private func pattern(_ value: String, ignoreCase: Bool, presentMatchesEmpty: Bool, path: Bool) -> Pattern {
        if path && value.contains("{") && pathTemplateProblem(value) == nil {
            templates.append(value.split(separator: "/", omittingEmptySubsequences: false).map { s in
                s == "{*}" ? .one : s == "{**}" ? .rest : .literal(Array(s.utf8))
            })
            return Pattern(kind: .template, ignoreCase: false, start: Int32(templates.count - 1), count: 0)
        }
        let v = ignoreCase ? value.lowercased() : value
        let kind: Pattern.Kind
        var body = Array(v.utf8)
        if v == "*" {
            kind = presentMatchesEmpty ? .present : .nonEmpty
            body = []
        } else if v.hasPrefix("*") {
            kind = .suffix
            body.removeFirst()
        } else if v.hasSuffix("*") {
            kind = .prefix
            body.removeLast()
        } else {
            kind = .exact
        }
        let start = Int32(bytes.count)
        bytes += body
        return Pattern(kind: kind, ignoreCase: ignoreCase, start: start, count: Int32(body.count))
    }

    private func valueSet(_ list: [String], _ attr: AttrRef) -> ValueSet {
        if list.isEmpty { return .none }
        if attr.isAddress {
            ipSets.append(IPSet(list.compactMap { try? CIDR.parse($0).get() }))
            return ValueSet(kind: .addresses, start: Int32(ipSets.count - 1), count: 1)
        }
        if attr.kind == .destinationPort {
            let start = Int32(ports.count)
            ports += list.compactMap { UInt16($0) }
            return ValueSet(kind: .ports, start: start, count: Int32(ports.count) - start)
        }
        let start = Int32(patterns.count)
        for v in list {
            patterns.append(pattern(v, ignoreCase: attr.kind == .host, presentMatchesEmpty: attr.kind == .header, path: attr.kind == .path))
        }
        return ValueSet(kind: .patterns, start: start, count: Int32(list.count))
    }

    private func cond(_ attribute: PolicyAttribute, _ values: [String], _ notValues: [String]) -> Cond? {
        if values.isEmpty && notValues.isEmpty { return nil }
        let r = ref(attribute)
        return Cond(attr: r, values: valueSet(values, r), notValues: valueSet(notValues, r))
    }

    private func addGroup(_ items: [Cond?]) {
        let start = Int32(conds.count)
        conds += items.compactMap { $0 }
        groups.append(Group(start: start, count: Int32(conds.count) - start))
    }

    /// Compiles one rule; returns its index.
    func add(_ rule: AuthorizationRule) -> Int {
        // Conditions of the groups first (each group contiguous), then the groups, then `when`.
        let fromStart = Int32(groups.count)
        for s in rule.from {
            addGroup([
                cond(.sourcePrincipal, s.principals, s.notPrincipals),
                cond(.requestAuth("principal"), s.requestPrincipals, s.notRequestPrincipals),
                cond(.sourceNamespace, s.namespaces, s.notNamespaces),
                cond(.sourceServiceAccount, s.serviceAccounts, s.notServiceAccounts),
                cond(.sourceIP, s.ipBlocks.map(\.description), s.notIpBlocks.map(\.description)),
                cond(.remoteIP, s.remoteIpBlocks.map(\.description), s.notRemoteIpBlocks.map(\.description)),
            ])
        }
        let toStart = Int32(groups.count)
        for o in rule.to {
            // Cheap attributes first: a port or a method rules most requests out before a path is compared.
            addGroup([
                cond(.destinationPort, o.ports.map { String($0) }, o.notPorts.map { String($0) }),
                cond(.requestMethod, o.methods, o.notMethods),
                cond(.requestHost, o.hosts, o.notHosts),
                cond(.requestPath, o.paths, o.notPaths),
            ])
        }
        let whenStart = Int32(conds.count)
        conds += rule.when.compactMap { cond($0.attribute, $0.values, $0.notValues) }
        let whenCount = Int32(conds.count) - whenStart
        var usesHTTP = conds[Int(whenStart)...].contains { $0.attr.isHTTPOnly }
        for g in groups[Int(fromStart)...] where conds[Int(g.start)..<Int(g.start + g.count)].contains(where: { $0.attr.isHTTPOnly }) { usesHTTP = true }
        rules.append(Rule(whenStart: whenStart, whenCount: whenCount, fromStart: fromStart, fromCount: Int32(rule.from.count),
                          toStart: toStart, toCount: Int32(rule.to.count), usesHTTPFields: usesHTTP))
        return rules.count - 1
    }

    func build() -> MatchProgram { MatchProgram(self) }
}

/// The compiled rules of an engine.
final class MatchProgram: Sendable {
    let bytes: Table<UInt8>
    let patterns: Table<Pattern>
    let templates: [[TemplateSegment]]
    let ipSets: [IPSet]
    let ports: Table<UInt16>
    let keys: Table<String>
    let conds: Table<Cond>
    let groups: Table<Group>
    let rules: Table<Rule>

    init(_ b: ProgramBuilder) {
        bytes = Table(b.bytes)
        patterns = Table(b.patterns)
        templates = b.templates
        ipSets = b.ipSets
        ports = Table(b.ports)
        keys = Table(b.keys)
        conds = Table(b.conds)
        groups = Table(b.groups)
        rules = Table(b.rules)
    }

    func cache(for a: some AttributeSource) -> AttributeCache {
        AttributeCache(isHTTP: a.isHTTP, keys: UnsafeBufferPointer(keys.buffer))
    }

    /// Whether rule `index` matches the request.
    func matches(rule index: Int, _ a: some AttributeSource, _ cache: inout AttributeCache, tcp: TCPFieldHandling) -> Bool {
        let r = rules[index]
        let skipHTTP = !cache.isHTTP
        if skipHTTP && r.usesHTTPFields && tcp == .ruleNeverMatches { return false }
        if !all(Int(r.whenStart), Int(r.whenCount), a, &cache, skipHTTP: skipHTTP) { return false }
        if r.toCount > 0 && !any(Int(r.toStart), Int(r.toCount), a, &cache, skipHTTP: skipHTTP) { return false }
        if r.fromCount > 0 && !any(Int(r.fromStart), Int(r.fromCount), a, &cache, skipHTTP: skipHTTP) { return false }
        return true
    }

    @inline(__always)
    private func all(_ start: Int, _ count: Int, _ a: some AttributeSource, _ cache: inout AttributeCache, skipHTTP: Bool) -> Bool {
        var i = start
        while i < start + count {
            let c = conds[i]
            i += 1
            if skipHTTP && c.attr.isHTTPOnly { continue }
            if c.values.kind != .none && !matches(c.values, c.attr, a, &cache) { return false }
            if c.notValues.kind != .none && matches(c.notValues, c.attr, a, &cache) { return false }
        }
        return true
    }

    @inline(__always)
    private func any(_ start: Int, _ count: Int, _ a: some AttributeSource, _ cache: inout AttributeCache, skipHTTP: Bool) -> Bool {
        var g = start
        while g < start + count {
            let group = groups[g]
            g += 1
            if all(Int(group.start), Int(group.count), a, &cache, skipHTTP: skipHTTP) { return true }
        }
        return false
    }

    private func matches(_ set: ValueSet, _ attr: AttrRef, _ a: some AttributeSource, _ cache: inout AttributeCache) -> Bool {
        switch set.kind {
        case .none: return false
        case .ports:
            guard let p = cache.destinationPort(a) else { return false }
            var i = Int(set.start)
            while i < Int(set.start + set.count) {
                if ports[i] == p { return true }
                i += 1
            }
            return false
        case .addresses:
            guard let addr = cache.address(attr, a) else { return false }
            return ipSets[Int(set.start)].contains(addr)
        case .patterns:
            guard var v = cache.string(attr, a) else { return false }
            let whole = v.withUTF8 { value in matchesAny(set, value) }
            // A header sent several times (or a list value) matches when any element does, as Istio's
            // header matcher does: `x-user: ok` then `x-user: evil` must not slip past a rule on `evil`.
            guard !whole, attr.kind == .header else { return whole }
            return HeaderElements.any(of: v) { element in
                var text = element
                return text.withUTF8 { matchesAny(set, $0) }
            }
        }
    }

    @inline(__always)
    private func matchesAny(_ set: ValueSet, _ value: UnsafeBufferPointer<UInt8>) -> Bool {
        var i = Int(set.start)
        while i < Int(set.start + set.count) {
            if matches(patterns[i], value) { return true }
            i += 1
        }
        return false
    }

    private func matches(_ p: Pattern, _ value: UnsafeBufferPointer<UInt8>) -> Bool {
        let n = Int(p.count)
        switch p.kind {
        case .present: return true
        case .nonEmpty: return value.count > 0
        case .exact: return value.count == n && equal(p, value, from: 0)
        case .prefix: return value.count >= n && equal(p, value, from: 0)
        case .suffix: return value.count >= n && equal(p, value, from: value.count - n)
        case .template: return Self.match(templates[Int(p.start)], value)
        }
    }

    @inline(__always)
    private func equal(_ p: Pattern, _ value: UnsafeBufferPointer<UInt8>, from offset: Int) -> Bool {
        let base = bytes.buffer.baseAddress! + Int(p.start)
        let n = Int(p.count)
        var i = 0
        if p.ignoreCase {
            while i < n {
                var c = value[offset + i]
                if c >= 65 && c <= 90 { c |= 0x20 }
                if c != base[i] { return false }
                i += 1
            }
        } else {
            while i < n {
                if value[offset + i] != base[i] { return false }
                i += 1
            }
        }
        return true
    }

    /// Envoy's URI templates: `{*}` one non-empty segment, `{**}` the rest (possibly empty); the `/` before a
    /// segment is literal, so `/a/{**}` matches `/a/` and `/a/b/c`, not `/a`.
    static func match(_ segments: [TemplateSegment], _ path: UnsafeBufferPointer<UInt8>) -> Bool {
        var pos = 0
        for (i, segment) in segments.enumerated() {
            if i > 0 {
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

/// A rule in words, for `interpose explain`.
func explanation(of rule: AuthorizationRule) -> String {
    func field(_ name: String, _ values: [String], _ not: [String]) -> [String] {
        var out: [String] = []
        if !values.isEmpty { out.append("\(name) [\(values.joined(separator: ", "))]") }
        if !not.isEmpty { out.append("not \(name) [\(not.joined(separator: ", "))]") }
        return out
    }
    var parts: [String] = []
    if !rule.from.isEmpty {
        parts.append("from " + rule.from.map { s in
            (field("principals", s.principals, s.notPrincipals) + field("requestPrincipals", s.requestPrincipals, s.notRequestPrincipals)
                + field("namespaces", s.namespaces, s.notNamespaces) + field("serviceAccounts", s.serviceAccounts, s.notServiceAccounts)
                + field("ipBlocks", s.ipBlocks.map(\.description), s.notIpBlocks.map(\.description))
                + field("remoteIpBlocks", s.remoteIpBlocks.map(\.description), s.notRemoteIpBlocks.map(\.description))).joined(separator: " and ")
        }.joined(separator: " or "))
    }
    if !rule.to.isEmpty {
        parts.append("to " + rule.to.map { o in
            (field("hosts", o.hosts, o.notHosts) + field("ports", o.ports.map { String($0) }, o.notPorts.map { String($0) })
                + field("methods", o.methods, o.notMethods) + field("paths", o.paths, o.notPaths)).joined(separator: " and ")
        }.joined(separator: " or "))
    }
    if !rule.when.isEmpty {
        parts.append("when " + rule.when.flatMap { field($0.key, $0.values, $0.notValues) }.joined(separator: " and "))
    }
    return parts.isEmpty ? "{} (everything)" : parts.joined(separator: "; ")
}

/// The elements of a header sent several times (joined with `,`) or of a list value, without the
/// white space around them: what both the matcher and the rule index look values up by, so a rule on
/// `evil` is reached by `x-user: ok` then `x-user: evil`.
enum HeaderElements {
    /// Whether `body` holds for one element; a value without a comma is not split (callers have
    /// already tried it whole).
    @inline(__always)
    static func any(of value: String, _ body: (String) -> Bool) -> Bool {
        guard value.utf8.contains(UInt8(ascii: ",")) else { return false }
        for element in value.split(separator: ",") {
            var e = element.drop { $0 == " " || $0 == "\t" }
            while e.last == " " || e.last == "\t" { e = e.dropLast() }
            if body(String(e)) { return true }
        }
        return false
    }
}
