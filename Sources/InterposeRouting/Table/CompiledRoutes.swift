import InterposeConfig

/// A class: the router walks routes on every request, and a reference costs one retain where a copy
/// of this struct cost one per field.
public final class CompiledRoute: Sendable {
    public let index: Int
    public let name: String?
    public let matches: [CompiledHTTPMatch]
    public let destinations: [WeightedDestination]
    public let weights: [UInt32]
    public let redirect: HTTPRedirect?
    public let directResponse: DirectResponse?
    public let rewrite: HTTPRewrite?
    public let uriRegexRewrite: CompiledRegexRewrite?
    public let headers: Headers
    public let mirrors: [Mirror]
    public let timeout: Double?

    public var label: String { name.map { "\($0) (#\(index))" } ?? "#\(index)" }

    init(index: Int, name: String?, matches: [CompiledHTTPMatch], destinations: [WeightedDestination], weights: [UInt32],
         redirect: HTTPRedirect?, directResponse: DirectResponse?, rewrite: HTTPRewrite?, uriRegexRewrite: CompiledRegexRewrite?,
         headers: Headers, mirrors: [Mirror], timeout: Double?) {
        self.index = index
        self.name = name
        self.matches = matches
        self.destinations = destinations
        self.weights = weights
        self.redirect = redirect
        self.directResponse = directResponse
        self.rewrite = rewrite
        self.uriRegexRewrite = uriRegexRewrite
        self.headers = headers
        self.mirrors = mirrors
        self.timeout = timeout
    }
}

/// uriRegexRewrite: replace every match of `match` in the path with `rewrite` (\1 groups allowed).
public struct CompiledRegexRewrite: @unchecked Sendable {
    let regex: Regex<AnyRegexOutput>
    let template: String

    init?(_ match: String, _ template: String) {
        guard let r = try? Regex(match) else { return nil }
        regex = r
        self.template = template
    }

    public func apply(_ path: String) -> String {
        path.replacing(regex) { m in
            var out = ""
            var chars = template[...]
            while let c = chars.first {
                chars = chars.dropFirst()
                if c == "\\", let d = chars.first, let n = d.wholeNumberValue, n < m.output.count {
                    chars = chars.dropFirst()
                    if let sub = m.output[n].substring { out += sub }
                } else {
                    out.append(c)
                }
            }
            return out
        }
    }
}

public struct CompiledTCPRoute: Sendable {
    public let index: Int
    public let matches: [L4Match]
    public let destinations: [WeightedDestination]
    public let weights: [UInt32]
}

public final class CompiledVirtualService: Sendable {
    public let name: String
    public let namespace: String
    public let hosts: [String]
    public let http: [CompiledRoute]
    public let tcp: [CompiledTCPRoute]

    init(name: String, namespace: String, hosts: [String], http: [CompiledRoute], tcp: [CompiledTCPRoute]) {
        self.name = name
        self.namespace = namespace
        self.hosts = hosts
        self.http = http
        self.tcp = tcp
    }
}
