import Foundation
import Testing
@testable import InterposeConfig
import InterposeFlow
@testable import InterposePolicy

/// A request or connection with fixed attributes; every field settable.
struct Req: AttributeSource {
    var sourceAddress: FlowAddress? = FlowAddress("192.0.2.10")
    var sourcePrincipal: String?
    var sourceNamespace: String?
    var sourceLabels: [String: String] = [:]
    var destinationService: String? = "reviews.shop.svc.cluster.local"
    var destinationPort: UInt16? = 9080
    var destinationLabels: [String: String] = [:]
    var destinationAddress: FlowAddress? = FlowAddress("10.0.0.7")
    var connectionSNI: String?
    var isHTTP = true
    var requestPath: String? = "/"
    var requestMethod: String? = "GET"
    var requestHost: String? = "reviews.shop.svc.cluster.local:9080"
    var headers: [String: String] = [:]
    var query: [String: String] = [:]
    var isGRPC = false

    func sourceLabel(_ key: String) -> String? { sourceLabels[key] }
    func destinationLabel(_ key: String) -> String? { destinationLabels[key] }
    func requestHeader(_ lowercasedName: String) -> String? { isHTTP ? headers[lowercasedName] : nil }
    func requestQuery(_ name: String) -> String? { isHTTP ? query[name] : nil }

    /// An HTTP request.
    static func http(_ method: String = "GET", _ path: String = "/", from source: String = "192.0.2.10", headers: [String: String] = [:]) -> Req {
        var r = Req()
        r.requestMethod = method
        r.requestPath = path
        r.sourceAddress = FlowAddress(source)
        r.headers = headers
        return r
    }

    /// A TCP connection: no request attributes.
    static func tcp(from source: String = "192.0.2.10", port: UInt16 = 9080) -> Req {
        var r = Req()
        r.isHTTP = false
        r.requestPath = nil
        r.requestMethod = nil
        r.requestHost = nil
        r.sourceAddress = FlowAddress(source)
        r.destinationPort = port
        return r
    }
}

/// Loads YAML as `ConfigLoader.load(path:)` does (decode, then cross-resource checks).
func loadPolicyYAML(_ yaml: String, file: String = "policy.yaml") -> ConfigBundle {
    var bundle = ConfigBundle()
    ConfigLoader.load(text: yaml, file: file, into: &bundle)
    ConfigLoader.validateReferences(&bundle)
    return bundle
}

/// Compiles YAML that must load without errors.
func makeEngine(_ yaml: String, lists: ValueListStore = ValueListStore(), previous: PolicyEngine? = nil,
                sourceLocation: SourceLocation = #_sourceLocation) -> PolicyEngine {
    let bundle = loadPolicyYAML(yaml)
    #expect(bundle.errors.isEmpty, "\(bundle.summary)", sourceLocation: sourceLocation)
    return PolicyEngine.compile(bundle, lists: lists, previous: previous)
}

extension PolicyEngine {
    /// The verdict of a check that needs no Global quota.
    func verdict(_ a: some AttributeSource, now: UInt64 = 1_000_000_000_000, sourceLocation: SourceLocation = #_sourceLocation) -> PolicyVerdict {
        switch check(a, now: now) {
        case .done(let v): return v
        case .needsGlobal:
            Issue.record("unexpected needsGlobal", sourceLocation: sourceLocation)
            return PolicyVerdict(outcome: .unavailable)
        }
    }

    func allows(_ a: some AttributeSource, now: UInt64 = 1_000_000_000_000) -> Bool { verdict(a, now: now).outcome == .allow }
}

extension ConfigBundle {
    func issues(at path: String) -> [ConfigIssue] { issues.filter { $0.path == path } }
    var summary: String { issues.map(\.description).joined(separator: "\n") }
}

/// One AuthorizationPolicy document.
func authz(_ name: String, action: String? = "ALLOW", namespace: String = "shop", annotations: [String: String] = [:], provider: String? = nil,
           rules: String?) -> String {
    var text = """
    apiVersion: security.istio.io/v1
    kind: AuthorizationPolicy
    metadata:
      name: \(name)
      namespace: \(namespace)

    """
    if !annotations.isEmpty {
        text += "  annotations:\n" + annotations.map { "    \($0.key): \"\($0.value)\"\n" }.joined()
    }
    text += "spec:\n"
    if let action { text += "  action: \(action)\n" }
    if let provider { text += "  provider: {name: \(provider)}\n" }
    if let rules {
        text += "  rules:\n" + rules.split(separator: "\n", omittingEmptySubsequences: false).map { "  " + $0 }.joined(separator: "\n") + "\n"
    }
    if action == nil && provider == nil && rules == nil { text = text.replacingOccurrences(of: "spec:\n", with: "spec: {}\n") }
    return text
}

/// An ALLOW policy with one rule: requests are allowed exactly when the rule matches.
func ruleEngine(_ rule: String) -> PolicyEngine {
    makeEngine(authz("only", rules: rule))
}

let second: UInt64 = 1_000_000_000

/// The examples directory of the repository.
let examplesDirectory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    .appendingPathComponent("examples").appendingPathComponent("policy").path
