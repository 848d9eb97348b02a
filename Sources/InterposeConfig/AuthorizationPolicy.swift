import InterposeCapture

// MARK: - Attributes (Mixer's vocabulary), shared by AuthorizationPolicy conditions, ValueList checks and
// RateLimitPolicy descriptors. The policy module resolves them against the request.

/// One attribute of a request or connection, by its Mixer / Istio name.
public enum PolicyAttribute: Sendable, Hashable, CustomStringConvertible {
    /// `source.ip`: the downstream peer.
    case sourceIP
    /// `remote.ip`: the original client. Interpose trusts no forwarding hops, so it is `source.ip` (Envoy with
    /// `xff_num_trusted_hops: 0`, Istio's default).
    case remoteIP
    case sourcePrincipal
    case sourceNamespace
    /// `source.serviceAccount`: `namespace/name`, read from the principal `.../ns/<namespace>/sa/<name>`.
    case sourceServiceAccount
    case sourceLabel(String)
    case destinationService
    case destinationPort
    case destinationIP
    case destinationLabel(String)
    case requestPath
    case requestMethod
    case requestHost
    /// Header name lower-cased.
    case requestHeader(String)
    case requestQuery(String)
    /// `request.auth.*` (JWT claims): there is no request authentication in Interpose, so it is never present.
    case requestAuth(String)
    /// `connection.sni` (also Mixer's `connection.requested_server_name`).
    case connectionSNI

    public enum ValueKind: Sendable { case string, address, port }

    public var valueKind: ValueKind {
        switch self {
        case .sourceIP, .remoteIP, .destinationIP: return .address
        case .destinationPort: return .port
        default: return .string
        }
    }

    /// Only an HTTP request has it (a TCP connection never does).
    public var isHTTPOnly: Bool {
        switch self {
        case .requestPath, .requestMethod, .requestHost, .requestHeader, .requestQuery, .requestAuth: return true
        default: return false
        }
    }

    public var description: String {
        switch self {
        case .sourceIP: return "source.ip"
        case .remoteIP: return "remote.ip"
        case .sourcePrincipal: return "source.principal"
        case .sourceNamespace: return "source.namespace"
        case .sourceServiceAccount: return "source.serviceAccount"
        case .sourceLabel(let k): return "source.labels[\(k)]"
        case .destinationService: return "destination.service"
        case .destinationPort: return "destination.port"
        case .destinationIP: return "destination.ip"
        case .destinationLabel(let k): return "destination.labels[\(k)]"
        case .requestPath: return "request.path"
        case .requestMethod: return "request.method"
        case .requestHost: return "request.host"
        case .requestHeader(let k): return "request.headers[\(k)]"
        case .requestQuery(let k): return "request.query[\(k)]"
        case .requestAuth(let k): return "request.auth.\(k)"
        case .connectionSNI: return "connection.sni"
        }
    }

    /// Every name `parse` accepts, for messages.
    public static let names = "source.ip, remote.ip, source.principal, source.namespace, source.serviceAccount, source.labels[KEY], "
        + "destination.service, destination.port, destination.ip, destination.labels[KEY], request.path, request.method, "
        + "request.host, request.headers[NAME], request.query[NAME], request.auth.*, connection.sni"

    /// Reads an attribute name: `source.ip`, `request.headers[x-user]`, ...; nil when it is not one.
    public static func parse(_ key: String) -> PolicyAttribute? {
        func keyed(_ prefix: String) -> String? {
            guard key.hasPrefix(prefix + "["), key.hasSuffix("]") else { return nil }
            let inner = key.dropFirst(prefix.count + 1).dropLast()
            return inner.isEmpty || inner.contains("[") || inner.contains("]") ? nil : String(inner)
        }
        switch key {
        case "source.ip", "source.address": return .sourceIP
        case "remote.ip": return .remoteIP
        case "source.principal", "source.user": return .sourcePrincipal
        case "source.namespace": return .sourceNamespace
        case "source.serviceAccount": return .sourceServiceAccount
        case "destination.service", "destination.service.host": return .destinationService
        case "destination.port": return .destinationPort
        case "destination.ip", "destination.address": return .destinationIP
        case "request.path", "request.url_path": return .requestPath
        case "request.method": return .requestMethod
        case "request.host": return .requestHost
        case "connection.sni", "connection.requested_server_name": return .connectionSNI
        default: break
        }
        if let k = keyed("request.headers") { return .requestHeader(k.lowercased()) }
        if let k = keyed("request.query") { return .requestQuery(k) }
        if let k = keyed("source.labels") { return .sourceLabel(k) }
        if let k = keyed("destination.labels") { return .destinationLabel(k) }
        if key.hasPrefix("request.auth."), key.count > "request.auth.".count { return .requestAuth(String(key.dropFirst("request.auth.".count))) }
        return nil
    }
}

// MARK: - AuthorizationPolicy (security.istio.io/v1, v1beta1), read as Istio writes it.

public enum AuthorizationAction: String, Sendable, Equatable, CaseIterable {
    case allow = "ALLOW", deny = "DENY", audit = "AUDIT", custom = "CUSTOM"
}

/// `rules[].from[].source`. Empty lists are "not given". Values are Istio's patterns: exact, `prefix*`,
/// `*suffix`, `*` (present and not empty).
public struct AuthorizationSource: Sendable, Equatable {
    public var principals: [String] = []
    public var notPrincipals: [String] = []
    public var requestPrincipals: [String] = []
    public var notRequestPrincipals: [String] = []
    public var namespaces: [String] = []
    public var notNamespaces: [String] = []
    public var serviceAccounts: [String] = []
    public var notServiceAccounts: [String] = []
    public var ipBlocks: [CIDR] = []
    public var notIpBlocks: [CIDR] = []
    public var remoteIpBlocks: [CIDR] = []
    public var notRemoteIpBlocks: [CIDR] = []
    public init() {}
}

/// `rules[].to[].operation`.
public struct AuthorizationOperation: Sendable, Equatable {
    public var hosts: [String] = []
    public var notHosts: [String] = []
    public var ports: [UInt16] = []
    public var notPorts: [UInt16] = []
    public var methods: [String] = []
    public var notMethods: [String] = []
    public var paths: [String] = []
    public var notPaths: [String] = []
    public init() {}
}

/// `rules[].when[]`: `key` with `values` and/or `notValues`.
public struct AuthorizationCondition: Sendable, Equatable {
    public var key: String
    public var attribute: PolicyAttribute
    public var values: [String]
    public var notValues: [String]
    public init(key: String, attribute: PolicyAttribute, values: [String], notValues: [String]) {
        self.key = key
        self.attribute = attribute
        self.values = values
        self.notValues = notValues
    }
}

/// One rule: it matches when one of `from` matches (or there is none), one of `to` matches (or there is
/// none) and every `when` condition holds. `{}` matches everything.
public struct AuthorizationRule: Sendable, Equatable {
    public var from: [AuthorizationSource] = []
    public var to: [AuthorizationOperation] = []
    public var when: [AuthorizationCondition] = []
    /// Where it was written (`spec.rules[2]`), for messages.
    public var path: String = ""
    public init() {}
}

public struct AuthorizationPolicy: Sendable, Equatable {
    public var meta: ResourceMeta
    public var action: AuthorizationAction
    /// CUSTOM: the in-process provider, a `Denier` or a `ValueList` of the policy's namespace.
    public var provider: String?
    /// No rules: the policy matches nothing (an ALLOW policy without rules is Istio's `allow-nothing`).
    public var rules: [AuthorizationRule]
    /// `metadata.annotations["istio.io/dry-run"] == "true"`: evaluated and reported, never enforced.
    public var dryRun: Bool
    public var id: String { "\(meta.namespace)/\(meta.name)" }
}

/// A CUSTOM provider that always denies with a fixed answer (Mixer's denier adapter): kill switches.
public struct Denier: Sendable, Equatable {
    public var meta: ResourceMeta
    /// HTTP status of the denial (default 403).
    public var status: Int
    /// Response body (default `access denied`).
    public var message: String
    /// grpc-status for gRPC requests; nil: derived from `status`.
    public var grpcStatus: Int?
    public var id: String { "\(meta.namespace)/\(meta.name)" }
}

/// Istio's `istio.io/dry-run` annotation.
public let dryRunAnnotation = "istio.io/dry-run"

extension ResourceDecoder {
    func authorizationPolicy(_ spec: MapReader?, meta: ResourceMeta) -> AuthorizationPolicy {
        defer { spec?.finish() }
        var action = AuthorizationAction.allow
        if let spec, let text = spec.string("action") {
            if let a = AuthorizationAction(rawValue: text.uppercased()) { action = a } else {
                diagnostics.error(spec.sub("action"), "'\(text)' is not ALLOW, DENY, AUDIT or CUSTOM", line: spec.raw("action")?.line)
            }
        }
        var provider: String?
        if let spec, let p = spec.map("provider") {
            provider = p.string("name")
            if action != .custom {
                diagnostics.error(spec.sub("provider"), "`provider` is only for action CUSTOM (this policy is \(action.rawValue))", line: p.node.line)
            }
            p.finish()
        }
        let rules = spec.map { policyRules($0, "rules") } ?? []
        if action == .custom {
            if rules.isEmpty {
                diagnostics.error("spec.rules", "CUSTOM action without rules is never triggered; add an empty rule `{}` to send every request to the provider")
            } else if provider?.isEmpty ?? true {
                diagnostics.error("spec.provider.name", "CUSTOM action needs provider.name: a Denier or a ValueList of namespace \(meta.namespace)")
            }
        }
        if action == .deny && rules.isEmpty {
            diagnostics.error("spec.rules", "DENY action without rules is never triggered; add an empty rule `{}` to deny every request")
        }
        if let spec {
            for key in ["selector", "targetRef", "targetRefs"] where spec.has(key) {
                spec.accept(key)
                diagnostics.warning(spec.sub(key), "ignored: this proxy serves one workload, so every AuthorizationPolicy it loads applies to it")
            }
        }
        var dryRun = false
        if let text = meta.annotations[dryRunAnnotation] {
            let path = "metadata.annotations.\(dryRunAnnotation)"
            if action != .allow && action != .deny {
                diagnostics.error(path, "the dry-run annotation only supports action ALLOW or DENY (Istio's rule), not \(action.rawValue)")
            } else if let v = parseGoBool(text) {
                dryRun = v
            } else {
                diagnostics.error(path, "'\(text)' is not true or false")
            }
        }
        return AuthorizationPolicy(meta: meta, action: action, provider: provider, rules: rules, dryRun: dryRun)
    }

    /// `rules: [{from, to, when}]` with Istio's validation (shared with RateLimitPolicy).
    func policyRules(_ r: MapReader, _ key: String) -> [AuthorizationRule] {
        var rules: [AuthorizationRule] = []
        for item in r.list(key) {
            // `- {}` and `- ` (null) are both the empty rule that matches everything.
            if item.node.null != nil { var rule = AuthorizationRule(); rule.path = item.path; rules.append(rule); continue }
            guard let m = MapReader(item.node, path: item.path, diagnostics: diagnostics) else { continue }
            rules.append(policyRule(m))
        }
        return rules
    }

    private func policyRule(_ m: MapReader) -> AuthorizationRule {
        defer { m.finish() }
        var rule = AuthorizationRule()
        rule.path = m.path
        if m.has("from") && m.list("from").isEmpty { diagnostics.error(m.sub("from"), "`from` must not be empty (leave it out to match every source)") }
        for f in m.maps("from") {
            defer { f.finish() }
            guard let s = f.map("source") else { diagnostics.error(f.sub("source"), "`from` needs a `source`", line: f.node.line); continue }
            defer { s.finish() }
            var src = AuthorizationSource()
            src.principals = values(s, "principals")
            src.notPrincipals = values(s, "notPrincipals")
            src.requestPrincipals = values(s, "requestPrincipals")
            src.notRequestPrincipals = values(s, "notRequestPrincipals")
            src.namespaces = values(s, "namespaces")
            src.notNamespaces = values(s, "notNamespaces")
            src.serviceAccounts = values(s, "serviceAccounts")
            src.notServiceAccounts = values(s, "notServiceAccounts")
            src.ipBlocks = cidrValues(s, "ipBlocks")
            src.notIpBlocks = cidrValues(s, "notIpBlocks")
            src.remoteIpBlocks = cidrValues(s, "remoteIpBlocks")
            src.notRemoteIpBlocks = cidrValues(s, "notRemoteIpBlocks")
            if src == AuthorizationSource() && !["principals", "notPrincipals", "requestPrincipals", "notRequestPrincipals", "namespaces", "notNamespaces",
                                                 "serviceAccounts", "notServiceAccounts", "ipBlocks", "notIpBlocks", "remoteIpBlocks", "notRemoteIpBlocks"].contains(where: s.has) {
                diagnostics.error(s.path, "`from.source` must not be empty", line: s.node.line)
            }
            if !(src.serviceAccounts.isEmpty && src.notServiceAccounts.isEmpty)
                && !(src.principals.isEmpty && src.notPrincipals.isEmpty && src.namespaces.isEmpty && src.notNamespaces.isEmpty) {
                diagnostics.error(s.sub("serviceAccounts"), "serviceAccounts cannot be set with principals or namespaces", line: s.node.line)
            }
            if !(src.requestPrincipals.isEmpty && src.notRequestPrincipals.isEmpty) {
                diagnostics.warning(s.sub(src.requestPrincipals.isEmpty ? "notRequestPrincipals" : "requestPrincipals"),
                                    "there is no request authentication (JWT) in Interpose: requestPrincipals never match, notRequestPrincipals always do")
            }
            rule.from.append(src)
        }
        if m.has("to") && m.list("to").isEmpty { diagnostics.error(m.sub("to"), "`to` must not be empty (leave it out to match every operation)") }
        for t in m.maps("to") {
            defer { t.finish() }
            guard let o = t.map("operation") else { diagnostics.error(t.sub("operation"), "`to` needs an `operation`", line: t.node.line); continue }
            defer { o.finish() }
            var op = AuthorizationOperation()
            op.hosts = values(o, "hosts")
            op.notHosts = values(o, "notHosts")
            op.ports = portValues(o, "ports")
            op.notPorts = portValues(o, "notPorts")
            op.methods = values(o, "methods")
            op.notMethods = values(o, "notMethods")
            op.paths = pathValues(o, "paths")
            op.notPaths = pathValues(o, "notPaths")
            if op == AuthorizationOperation() && !["hosts", "notHosts", "ports", "notPorts", "methods", "notMethods", "paths", "notPaths"].contains(where: o.has) {
                diagnostics.error(o.path, "`to.operation` must not be empty", line: o.node.line)
            }
            rule.to.append(op)
        }
        for w in m.maps("when") {
            defer { w.finish() }
            guard let key = w.string("key"), !key.isEmpty else {
                diagnostics.error(w.sub("key"), "a condition needs a key", line: w.node.line)
                w.accept("values", "notValues")
                continue
            }
            guard let attribute = PolicyAttribute.parse(key) else {
                diagnostics.error(w.sub("key"), "'\(key)' is not a supported attribute (\(PolicyAttribute.names))", line: w.raw("key")?.line)
                w.accept("values", "notValues")
                continue
            }
            let vs = conditionValues(w, "values", attribute)
            let nvs = conditionValues(w, "notValues", attribute)
            if vs.isEmpty && nvs.isEmpty && !w.has("values") && !w.has("notValues") {
                diagnostics.error(w.path, "at least one of values or notValues must be set for key \(key)", line: w.node.line)
            }
            if case .requestAuth = attribute {
                diagnostics.warning(w.sub("key"), "there is no request authentication (JWT) in Interpose: \(key) is never present (values never match, notValues always do)")
            }
            rule.when.append(AuthorizationCondition(key: key, attribute: attribute, values: vs, notValues: nvs))
        }
        return rule
    }

    /// A list of non-empty strings (Istio: "empty value not allowed").
    private func values(_ r: MapReader, _ key: String) -> [String] {
        var out: [String] = []
        for item in r.list(key) {
            guard let s = item.node.string else { diagnostics.error(item.path, "expected a string", line: item.node.line); continue }
            if s.isEmpty { diagnostics.error(item.path, "empty value not allowed", line: item.node.line); continue }
            out.append(s)
        }
        return out
    }

    private func cidrValues(_ r: MapReader, _ key: String) -> [CIDR] {
        values(r, key).enumerated().compactMap { i, s in
            switch CIDR.parse(s) {
            case .success(let c): return c
            case .failure(let e):
                diagnostics.error("\(r.sub(key))[\(i)]", "'\(s)' is not an IPv4 or IPv6 address or CIDR (\(e))", line: r.raw(key)?.line)
                return nil
            }
        }
    }

    private func portValues(_ r: MapReader, _ key: String) -> [UInt16] {
        values(r, key).enumerated().compactMap { i, s in
            guard let v = UInt16(s) else {
                diagnostics.error("\(r.sub(key))[\(i)]", "'\(s)' is not a port number 0-65535 (ports take exact numbers, no wildcards)", line: r.raw(key)?.line)
                return nil
            }
            return v
        }
    }

    private func pathValues(_ r: MapReader, _ key: String) -> [String] {
        let out = values(r, key)
        for (i, p) in out.enumerated() {
            if let problem = pathTemplateProblem(p) { diagnostics.error("\(r.sub(key))[\(i)]", "'\(p)': \(problem)", line: r.raw(key)?.line) }
        }
        return out
    }

    private func conditionValues(_ r: MapReader, _ key: String, _ attribute: PolicyAttribute) -> [String] {
        let out = values(r, key)
        for (i, v) in out.enumerated() {
            switch attribute.valueKind {
            case .address:
                if case .failure(let e) = CIDR.parse(v) {
                    diagnostics.error("\(r.sub(key))[\(i)]", "'\(v)' is not an IPv4 or IPv6 address or CIDR (\(e))", line: r.raw(key)?.line)
                }
            case .port:
                if UInt16(v) == nil { diagnostics.error("\(r.sub(key))[\(i)]", "'\(v)' is not a port number 0-65535", line: r.raw(key)?.line) }
            case .string: break
            }
        }
        return out
    }

    // MARK: Denier (interpose.dev/v1alpha1)

    func denier(_ spec: MapReader?, meta: ResourceMeta) -> Denier {
        defer { spec?.finish() }
        let status = spec?.int("status", range: 200...599) ?? 403
        let message = spec?.string("message") ?? "access denied"
        let grpc = spec?.int("grpcStatus", range: 0...16)
        return Denier(meta: meta, status: status, message: message, grpcStatus: grpc)
    }
}

/// Go's strconv.ParseBool, which Istio uses for the dry-run annotation.
func parseGoBool(_ s: String) -> Bool? {
    switch s {
    case "1", "t", "T", "TRUE", "true", "True": return true
    case "0", "f", "F", "FALSE", "false", "False": return false
    default: return nil
    }
}

/// Istio's path templates: a segment is `{*}` (one segment) or `{**}` (the rest: zero or more segments, last
/// only); braces anywhere else are an error. Nil when the path is fine (templated or not).
public func pathTemplateProblem(_ path: String) -> String? {
    guard path.contains("{") || path.contains("}") else { return nil }
    if path.hasPrefix("*") || (path.hasSuffix("*") && !path.hasSuffix("{**}") && !path.hasSuffix("{*}")) {
        return "a path template cannot be combined with a * prefix or suffix wildcard"
    }
    let segments = path.split(separator: "/", omittingEmptySubsequences: false)
    for (i, s) in segments.enumerated() where s.contains("{") || s.contains("}") {
        if s == "{*}" { continue }
        if s == "{**}" {
            if i != segments.count - 1 { return "{**} must be the last segment of a path template" }
            continue
        }
        return "'\(s)' is not a template segment: a segment is either literal, {*} (one segment) or {**} (the rest)"
    }
    return nil
}
