import InterposeConfig

/// A compiled string condition. Regexes are compiled once, at config load, and must match the whole
/// value (RE2 full-match semantics, as Envoy's safe_regex).
public struct CompiledStringMatch: @unchecked Sendable, CustomStringConvertible {
    enum Kind { case exact(String), prefix(String), regex(Regex<AnyRegexOutput>, String), invalid(String) }
    let kind: Kind
    let ignoreCase: Bool

    /// `ignoreCase` applies to exact and prefix only: Istio's `ignoreUriCase` leaves regexes case-sensitive.
    /// nil when the regex does not compile.
    public init?(_ m: StringMatch, ignoreCase: Bool = false) {
        let compiled = CompiledStringMatch.compiling(m, ignoreCase: ignoreCase)
        if case .invalid = compiled.kind { return nil }
        self = compiled
    }

    private init(kind: Kind, ignoreCase: Bool) {
        self.kind = kind
        self.ignoreCase = ignoreCase
    }

    /// Never fails: a regex that does not compile becomes a condition that matches nothing (validation
    /// reports it; a table built anyway must not turn the condition into "match everything").
    static func compiling(_ m: StringMatch, ignoreCase: Bool = false) -> CompiledStringMatch {
        switch m {
        case .exact(let s): return CompiledStringMatch(kind: .exact(ignoreCase ? s.lowercased() : s), ignoreCase: ignoreCase)
        case .prefix(let s): return CompiledStringMatch(kind: .prefix(ignoreCase ? s.lowercased() : s), ignoreCase: ignoreCase)
        case .regex(let s):
            guard let r = try? Regex(s) else { return CompiledStringMatch(kind: .invalid(s), ignoreCase: false) }
            return CompiledStringMatch(kind: .regex(r, s), ignoreCase: false)
        }
    }

    public func matches(_ value: String) -> Bool {
        switch kind {
        case .exact(let s): return (ignoreCase ? value.lowercased() : value) == s
        case .prefix(let s): return (ignoreCase ? value.lowercased() : value).hasPrefix(s)
        case .regex(let r, _): return (try? r.wholeMatch(in: value)) != nil
        case .invalid: return false
        }
    }

    /// The prefix this condition matches on (what a `rewrite.uri` swaps), nil for exact and regex.
    var prefix: String? {
        if case .prefix(let p) = kind { return p }
        return nil
    }

    public var description: String {
        switch kind {
        case .exact(let s): return "exact '\(s)'\(ignoreCase ? " (ignoring case)" : "")"
        case .prefix(let s): return "prefix '\(s)'\(ignoreCase ? " (ignoring case)" : "")"
        case .regex(_, let s): return "regex '\(s)'"
        case .invalid(let s): return "invalid regex '\(s)' (matches nothing)"
        }
    }
}

/// What a route match reads from a request: kept small and lazy (headers are looked up on demand).
public struct RequestView {
    public var method: String
    /// Path with its query string, as received.
    public var pathAndQuery: String
    public var authority: String
    public var scheme: String
    /// The destination port the client dialled (original destination).
    public var port: UInt16
    public var header: (String) -> String?

    public init(method: String, pathAndQuery: String, authority: String, scheme: String = "http", port: UInt16, header: @escaping (String) -> String?) {
        self.method = method
        self.pathAndQuery = pathAndQuery
        self.authority = authority
        self.scheme = scheme
        self.port = port
        self.header = header
    }

    /// The path without the query string (Envoy matches paths without it).
    public var path: Substring {
        if let q = pathAndQuery.utf8.firstIndex(of: UInt8(ascii: "?")) { return pathAndQuery[..<q] }
        return pathAndQuery[...]
    }

    public func queryParameter(_ name: String) -> String? {
        guard let q = pathAndQuery.firstIndex(of: "?") else { return nil }
        for pair in pathAndQuery[pathAndQuery.index(after: q)...].split(separator: "&") {
            let kv = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            if kv.first.map(String.init)?.removingPercentEncodingLite() == name {
                return kv.count > 1 ? String(kv[1]).removingPercentEncodingLite() : ""
            }
        }
        return nil
    }
}

extension String {
    /// Decodes %XX and '+' in query strings without Foundation.
    func removingPercentEncodingLite() -> String {
        guard contains("%") || contains("+") else { return self }
        var bytes: [UInt8] = []
        var it = Array(utf8)[...]
        while let b = it.first {
            it = it.dropFirst()
            if b == UInt8(ascii: "+") { bytes.append(UInt8(ascii: " ")); continue }
            if b == UInt8(ascii: "%"), it.count >= 2, let v = UInt8(String(decoding: it.prefix(2), as: UTF8.self), radix: 16) {
                bytes.append(v); it = it.dropFirst(2); continue
            }
            bytes.append(b)
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}

/// One compiled HTTPMatchRequest: every condition must hold (blocks are ORed by the route).
public struct CompiledHTTPMatch: Sendable {
    var uri: CompiledStringMatch?
    var scheme: CompiledStringMatch?
    var method: CompiledStringMatch?
    var authority: CompiledStringMatch?
    var headers: [(String, CompiledStringMatch?)]
    var withoutHeaders: [(String, CompiledStringMatch?)]
    var queryParams: [(String, CompiledStringMatch?)]
    var port: UInt16?
    var sourceLabels: [String: String]
    public let name: String?

    init(_ m: HTTPMatchRequest) {
        name = m.name
        uri = m.uri.map { CompiledStringMatch.compiling($0, ignoreCase: m.ignoreUriCase) }
        scheme = m.scheme.map { CompiledStringMatch.compiling($0) }
        method = m.method.map { CompiledStringMatch.compiling($0) }
        authority = m.authority.map { CompiledStringMatch.compiling($0) }
        headers = m.headers.map { ($0.0, $0.1.map { CompiledStringMatch.compiling($0) }) }
        withoutHeaders = m.withoutHeaders.map { ($0.0, $0.1.map { CompiledStringMatch.compiling($0) }) }
        queryParams = m.queryParams.map { ($0.0, $0.1.map { CompiledStringMatch.compiling($0) }) }
        port = m.port
        sourceLabels = m.sourceLabels
    }

    /// What `rewrite.uri` replaces when this block matched, as Envoy's `prefix_rewrite` does: the matched
    /// prefix, `/` when the block has no uri condition (Istio matches it as prefix `/`), nil (the whole
    /// path) for an exact or regex uri.
    public var rewritablePrefix: String? {
        guard let uri else { return "/" }
        return uri.prefix
    }

    /// nil when the request matches, else the first condition that failed. The reason is worded only
    /// with `explain` (for `interpose explain`); on the request path it is an empty string, built for free.
    public func mismatch(_ r: RequestView, sourceLabels labels: [String: String], explain: Bool = true) -> String? {
        func no(_ reason: @autoclosure () -> String) -> String { explain ? reason() : "" }
        if let port, port != r.port { return no("port \(r.port) is not \(port)") }
        for (k, v) in sourceLabels where labels[k] != v { return no("source label \(k)=\(labels[k] ?? "(none)") is not \(v)") }
        if let uri, !uri.matches(String(r.path)) { return no("uri '\(r.path)' does not match \(uri)") }
        if let scheme, !scheme.matches(r.scheme) { return no("scheme \(r.scheme) does not match \(scheme)") }
        if let method, !method.matches(r.method) { return no("method \(r.method) does not match \(method)") }
        if let authority, !authority.matches(r.authority) { return no("authority '\(r.authority)' does not match \(authority)") }
        for (name, m) in headers {
            guard let value = r.header(name) else { return no("header \(name) is absent") }
            if let m, !m.matches(value) { return no("header \(name): '\(value)' does not match \(m)") }
        }
        for (name, m) in withoutHeaders {
            let value = r.header(name)
            if let m {
                if m.matches(value ?? "") { return no("header \(name) matches \(m) (withoutHeaders)") }
            } else if value != nil {
                return no("header \(name) is present (withoutHeaders)")
            }
        }
        for (name, m) in queryParams {
            guard let value = r.queryParameter(name) else { return no("query parameter \(name) is absent") }
            if let m, !m.matches(value) { return no("query parameter \(name): '\(value)' does not match \(m)") }
        }
        return nil
    }
}
