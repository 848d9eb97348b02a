import Foundation
import Yams

/// Everything read from a config path: the resources, and the issues found reading them.
public struct ConfigBundle: Sendable {
    public var serviceEntries: [ServiceEntry] = []
    public var virtualServices: [VirtualService] = []
    public var destinationRules: [DestinationRule] = []
    public var sidecars: [Sidecar] = []
    public var flowPolicies: [FlowPolicy] = []
    /// security.istio.io AuthorizationPolicy, in load order (the policy engine sorts them by namespace/name).
    public var authorizationPolicies: [AuthorizationPolicy] = []
    /// interpose.dev ValueList (Mixer's list adapter) and Denier (Mixer's denier): CUSTOM providers.
    public var valueLists: [ValueList] = []
    public var deniers: [Denier] = []
    public var rateLimitPolicies: [RateLimitPolicy] = []
    public var proxy = ProxySettings()
    public var issues: [ConfigIssue] = []

    /// Empty, to fill with `ConfigLoader.load(text:file:into:)`.
    public init() {}

    public var errors: [ConfigIssue] { issues.filter { $0.severity == .error } }
    public var warnings: [ConfigIssue] { issues.filter { $0.severity == .warning } }

    /// Sidecar's policy wins over ProxyConfig's; ALLOW_ANY is Istio's default.
    public var outboundTrafficPolicy: OutboundTrafficPolicy {
        sidecars.compactMap(\.outboundTrafficPolicy).first ?? proxy.outboundTrafficPolicy ?? .allowAny
    }
}

extension ConfigBundle {
    /// The DestinationRule that applies to a host, as Istio picks it: the rule for the exact host, else the
    /// rule with the longest matching `*.` suffix, else a rule for `*`. Of several rules for one host the
    /// first loaded wins.
    public func destinationRule(forHost host: String) -> DestinationRule? {
        let h = host.lowercased()
        if let rule = destinationRules.first(where: { resolveHost($0.host, namespace: $0.meta.namespace) == h }) { return rule }
        var best: DestinationRule?
        for rule in destinationRules where rule.host.hasPrefix("*.") && h.hasSuffix(rule.host.dropFirst()) {
            if best.map({ rule.host.count > $0.host.count }) ?? true { best = rule }
        }
        return best ?? destinationRules.first { $0.host == "*" }
    }
}

extension ConfigBundle {
    /// Istio's short names: in a VirtualService or DestinationRule of namespace `ns`, a host without a dot
    /// means `host.ns.svc.cluster.local`. The short name is kept when a ServiceEntry declares it and not the
    /// long one, so a mesh that names its services short still works. ServiceEntry hosts are never expanded.
    public func resolveHost(_ host: String, namespace: String) -> String {
        let h = host.lowercased()
        guard !h.isEmpty, h != "*", !h.contains("."), !h.contains(":") else { return h }
        let fqdn = "\(h).\(namespace).svc.cluster.local"
        if serviceEntries.contains(where: { $0.hosts.contains(fqdn) }) { return fqdn }
        if serviceEntries.contains(where: { $0.hosts.contains(h) }) { return h }
        return fqdn
    }
}

/// Reads a file or a directory of multi-document YAML (`*.yaml`, `*.yml`, in name order).
public enum ConfigLoader {
    static let istioNetworking = ["networking.istio.io/v1", "networking.istio.io/v1beta1", "networking.istio.io/v1alpha3"]
    static let istioSecurity = ["security.istio.io/v1", "security.istio.io/v1beta1"]
    static let interposeAPI = "interpose.dev/v1alpha1"
    /// Kinds that belong to later parts of Interpose: accepted and kept out of the way here.
    static let otherKnownKinds: Set<String> = ["PeerAuthentication", "Telemetry"]

    public static func files(at path: String) throws -> [String] {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else {
            throw ConfigLoadError("\(path): no such file or directory")
        }
        guard isDir.boolValue else { return [path] }
        let names = try FileManager.default.contentsOfDirectory(atPath: path)
            .filter { $0.hasSuffix(".yaml") || $0.hasSuffix(".yml") }
            .filter { !$0.hasPrefix(".") }
            .sorted()
        return names.map { (path as NSString).appendingPathComponent($0) }
    }

    public static func load(path: String) throws -> ConfigBundle {
        var bundle = ConfigBundle()
        for file in try files(at: path) {
            guard let text = try? String(contentsOfFile: file, encoding: .utf8) else {
                bundle.issues.append(ConfigIssue(severity: .error, file: file, document: 0, resource: "", path: "", line: nil, message: "cannot read the file"))
                continue
            }
            load(text: text, file: file, into: &bundle)
        }
        validateReferences(&bundle)
        return bundle
    }

    public static func load(text: String, file: String, into bundle: inout ConfigBundle) {
        let diagnostics = Diagnostics()
        diagnostics.file = file
        // YamlSequence swallows a parse error and just ends: read it back from `error`, or a syntax
        // error half-way through a file would silently drop the rest of it.
        var nodes: [Node] = []
        var parseError: Error?
        do {
            var sequence = try Yams.compose_all(yaml: text)
            while let node = sequence.next() { nodes.append(node) }
            parseError = sequence.error
        } catch {
            parseError = error
        }
        for (index, node) in nodes.enumerated() {
            diagnostics.document = index + 1
            diagnostics.resource = ""
            // An empty document (`---` with nothing after it, or only comments) is not a resource.
            if node.null != nil { continue }
            guard let doc = MapReader(node, path: "", diagnostics: diagnostics) else { continue }
            let apiVersion = doc.string("apiVersion") ?? ""
            let kind = doc.string("kind") ?? ""
            var meta = ResourceMeta(name: "", namespace: "default", file: file, document: index + 1)
            if let m = doc.map("metadata") {
                meta.name = m.string("name") ?? ""
                meta.namespace = m.string("namespace") ?? "default"
                meta.annotations = m.stringMap("annotations")
                m.accept("labels", "uid", "resourceVersion", "generation", "creationTimestamp", "managedFields")
                m.finish()
            }
            diagnostics.resource = "\(kind) \(meta.namespace)/\(meta.name)"
            if meta.name.isEmpty { diagnostics.error("metadata.name", "every resource needs a name") }
            let decoder = ResourceDecoder(diagnostics: diagnostics)
            let spec = doc.map("spec")
            doc.accept("status")
            defer { doc.finish() }
            if otherKnownKinds.contains(kind) {
                spec?.accept()
                diagnostics.warning("kind", "\(kind) is recognised but not enforced yet by this version of Interpose")
                continue
            }
            let isIstio = istioNetworking.contains(apiVersion)
            switch (kind, isIstio, apiVersion == interposeAPI) {
            case ("ServiceEntry", true, _):
                guard let spec else { diagnostics.error("spec", "missing"); continue }
                bundle.serviceEntries.append(decoder.serviceEntry(spec, meta: meta))
            case ("VirtualService", true, _):
                guard let spec else { diagnostics.error("spec", "missing"); continue }
                bundle.virtualServices.append(decoder.virtualService(spec, meta: meta))
            case ("DestinationRule", true, _):
                guard let spec else { diagnostics.error("spec", "missing"); continue }
                bundle.destinationRules.append(decoder.destinationRule(spec, meta: meta))
            case ("Sidecar", true, _):
                guard let spec else { diagnostics.error("spec", "missing"); continue }
                bundle.sidecars.append(decoder.sidecar(spec, meta: meta))
            case ("AuthorizationPolicy", _, _) where istioSecurity.contains(apiVersion):
                bundle.authorizationPolicies.append(decoder.authorizationPolicy(spec, meta: meta))
            case ("ValueList", _, true):
                guard let spec else { diagnostics.error("spec", "missing"); continue }
                bundle.valueLists.append(decoder.valueList(spec, meta: meta))
            case ("Denier", _, true):
                bundle.deniers.append(decoder.denier(spec, meta: meta))
            case ("RateLimitPolicy", _, true):
                guard let spec else { diagnostics.error("spec", "missing"); continue }
                bundle.rateLimitPolicies.append(decoder.rateLimitPolicy(spec, meta: meta))
            case ("FlowPolicy", _, true):
                guard let spec else { diagnostics.error("spec", "missing"); continue }
                bundle.flowPolicies.append(decoder.flowPolicy(spec, meta: meta))
            case ("ProxyConfig", _, true):
                guard let spec else { diagnostics.error("spec", "missing"); continue }
                decoder.proxyConfig(spec, into: &bundle.proxy)
            default:
                diagnostics.warning("kind", "\(apiVersion.isEmpty ? "(no apiVersion)" : apiVersion) \(kind.isEmpty ? "(no kind)" : kind) is not a kind Interpose reads; ignored")
                spec?.accept()
            }
        }
        if let parseError {
            diagnostics.document = nodes.count + 1
            diagnostics.resource = ""
            diagnostics.error("", "not valid YAML: \(yamlProblem(parseError))", line: yamlLine(parseError))
        }
        bundle.issues += diagnostics.issues
    }

    static func yamlLine(_ error: Error) -> Int? {
        switch error as? YamlError {
        case .scanner(_, _, let mark, _), .parser(_, _, let mark, _), .composer(_, _, let mark, _): return mark.line
        case .duplicatedKeysInMapping(_, let context): return context.mark.line
        default: return nil
        }
    }

    /// The problem without Yams' snippet (the line number goes in the issue's location).
    static func yamlProblem(_ error: Error) -> String {
        switch error as? YamlError {
        case .scanner(let context, let problem, _, _), .parser(let context, let problem, _, _), .composer(let context, let problem, _, _):
            return (context.map { "\($0.text) " } ?? "") + problem
        case .duplicatedKeysInMapping(let duplicates, _):
            return "duplicated key(s) " + duplicates.sorted().map { "'\($0)'" }.joined(separator: ", ")
        default:
            return "\(error)"
        }
    }

    /// Cross-resource checks: every subset a route names is defined by a DestinationRule for that host.
    /// The rule consulted is the one the routing table uses for the host (`ConfigBundle.destinationRule(forHost:)`).
    static func validateReferences(_ bundle: inout ConfigBundle) {
        let rules = bundle
        func check(_ d: Destination, _ vs: VirtualService, _ path: String) {
            guard let subset = d.subset else { return }
            let host = rules.resolveHost(d.host, namespace: vs.meta.namespace)
            let rule = rules.destinationRule(forHost: host)
            if !(rule?.subsets.contains { $0.name == subset } ?? false) {
                let message = rule.map { "subset '\(subset)' of host '\(host)' is not defined by DestinationRule \($0.meta.namespace)/\($0.meta.name) (host \($0.host))" }
                    ?? "subset '\(subset)' of host '\(host)' is not defined: no DestinationRule applies to that host"
                bundle.issues.append(ConfigIssue(severity: .error, file: vs.meta.file, document: vs.meta.document,
                                                 resource: "VirtualService \(vs.meta.namespace)/\(vs.meta.name)", path: path, line: nil,
                                                 message: message))
            }
        }
        validatePolicyReferences(&bundle)
        let knownHosts = Set(bundle.serviceEntries.flatMap(\.hosts))
        for p in bundle.flowPolicies {
            for r in p.rules {
                for (j, h) in r.match.hosts.enumerated() where !knownHosts.contains(h) {
                    bundle.issues.append(ConfigIssue(severity: .error, file: p.meta.file, document: p.meta.document,
                                                     resource: "FlowPolicy \(p.meta.namespace)/\(p.meta.name)", path: "\(r.path).match.hosts[\(j)]", line: nil,
                                                     message: "'\(h)' is not a host of any ServiceEntry: a flow rule can only name hosts whose addresses are known"))
                }
            }
        }
        for vs in bundle.virtualServices {
            for (i, r) in vs.http.enumerated() {
                for (j, d) in r.destinations.enumerated() { check(d.destination, vs, "spec.http[\(i)].route[\(j)].destination.subset") }
                for (j, m) in r.mirrors.enumerated() { check(m.destination, vs, "spec.http[\(i)].mirrors[\(j)].destination.subset") }
            }
            for (i, r) in vs.tcp.enumerated() {
                for (j, d) in r.destinations.enumerated() { check(d.destination, vs, "spec.tcp[\(i)].route[\(j)].destination.subset") }
            }
        }
    }
}

extension ConfigLoader {
    /// Policy checks across resources: a CUSTOM AuthorizationPolicy names a Denier or a ValueList (with a
    /// `check`) of its namespace; names of one kind are unique.
    static func validatePolicyReferences(_ bundle: inout ConfigBundle) {
        func issue(_ meta: ResourceMeta, _ kind: String, _ path: String, _ message: String) {
            bundle.issues.append(ConfigIssue(severity: .error, file: meta.file, document: meta.document,
                                             resource: "\(kind) \(meta.namespace)/\(meta.name)", path: path, line: nil, message: message))
        }
        func duplicates(_ metas: [ResourceMeta], _ kind: String) {
            var seen: Set<String> = []
            for m in metas where !m.name.isEmpty {
                if !seen.insert("\(m.namespace)/\(m.name)").inserted {
                    issue(m, kind, "metadata.name", "another \(kind) is named \(m.namespace)/\(m.name) already")
                }
            }
        }
        duplicates(bundle.authorizationPolicies.map(\.meta), "AuthorizationPolicy")
        duplicates(bundle.valueLists.map(\.meta), "ValueList")
        duplicates(bundle.deniers.map(\.meta), "Denier")
        duplicates(bundle.rateLimitPolicies.map(\.meta), "RateLimitPolicy")
        for p in bundle.authorizationPolicies where p.action == .custom {
            guard let name = p.provider, !name.isEmpty else { continue }
            let denier = bundle.deniers.contains { $0.meta.namespace == p.meta.namespace && $0.meta.name == name }
            let list = bundle.valueLists.first { $0.meta.namespace == p.meta.namespace && $0.meta.name == name }
            if denier && list != nil {
                issue(p.meta, "AuthorizationPolicy", "spec.provider.name", "'\(name)' names both a Denier and a ValueList of namespace \(p.meta.namespace): rename one")
            } else if let list, list.check == nil {
                issue(p.meta, "AuthorizationPolicy", "spec.provider.name", "ValueList \(list.id) has no `check` (the attribute to look up), so it cannot decide as a provider")
            } else if !denier && list == nil {
                issue(p.meta, "AuthorizationPolicy", "spec.provider.name", "'\(name)' is not a Denier or a ValueList of namespace \(p.meta.namespace) (CUSTOM providers are in process)")
            }
        }
    }
}

public struct ConfigLoadError: Error, CustomStringConvertible {
    public let description: String
    public init(_ d: String) { description = d }
}
