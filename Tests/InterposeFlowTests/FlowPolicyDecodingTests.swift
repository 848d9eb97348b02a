import Foundation
import InterposeCapture
import Testing
@testable import InterposeConfig

/// FlowPolicy YAML decoding: every field, and errors that point at the field that is wrong.
@Suite struct FlowPolicyDecodingTests {
    static let fullPolicy = """
    apiVersion: networking.istio.io/v1
    kind: ServiceEntry
    metadata: {name: payments, namespace: shop}
    spec:
      hosts: [payments.example.com]
      ports: [{number: 443, name: https, protocol: TLS}]
      resolution: DNS
    ---
    apiVersion: interpose.dev/v1alpha1
    kind: FlowPolicy
    metadata:
      name: egress
      namespace: shop
    spec:
      order: 10
      rules:
      - name: block-metadata
        match:
          direction: OUTBOUND
          sourceCIDRs: [10.0.0.0/8]
          destinationCIDRs: [169.254.169.254, "fd00:ec2::254/128", 192.168.0.0/16]
          destinationPorts: ["443", "8000-8100", 80, 9090]
          uids: [1000, "1001"]
          hosts: [payments.example.com]
        action: DENY
        denyMode: DROP
      - name: limit-inbound
        match:
          direction: inbound
        action: proxy
        rateLimit:
          newFlowsPerSecond: 2.5
          burst: 10
          exceededAction: deny
          exceededDenyMode: drop
      - action: BYPASS
    """

    @Test func decodesEveryField() throws {
        let bundle = loadFlowYAML(Self.fullPolicy)
        #expect(bundle.errors.isEmpty, "\(bundle.summary)")
        let policy = try #require(bundle.flowPolicies.first)
        #expect(policy.meta.name == "egress" && policy.meta.namespace == "shop")
        #expect(policy.order == 10)
        try #require(policy.rules.count == 3)

        let deny = policy.rules[0]
        #expect(deny.name == "block-metadata")
        #expect(deny.path == "spec.rules[0]")
        #expect(deny.match.direction == .outbound)
        #expect(deny.match.sourceCIDRs == [cidr("10.0.0.0/8")])
        #expect(deny.match.destinationCIDRs == [cidr("169.254.169.254/32"), cidr("fd00:ec2::254/128"), cidr("192.168.0.0/16")])
        #expect(deny.match.destinationCIDRs[1].family == .v6)
        #expect(deny.match.destinationPorts == [PortRange(443), PortRange(8000, 8100)!, PortRange(80), PortRange(9090)])
        #expect(deny.match.uids == [1000, 1001])
        #expect(deny.match.hosts == ["payments.example.com"])
        #expect(deny.action == .deny)
        #expect(deny.denyMode == .drop)
        #expect(deny.rateLimit == nil)

        // Lower-case enum values are accepted; the rate limit keeps its numbers.
        let limited = policy.rules[1]
        #expect(limited.match.direction == .inbound)
        #expect(limited.action == .proxy)
        #expect(limited.denyMode == .reset) // the default
        let limit = try #require(limited.rateLimit)
        #expect(limit.newFlowsPerSecond == 2.5)
        #expect(limit.burst == 10)
        #expect(limit.exceededAction == .deny)
        #expect(limit.exceededDenyMode == .drop)

        // A rule without a name is named after its index; an empty match matches every field.
        let bypass = policy.rules[2]
        #expect(bypass.name == "rule-2")
        #expect(bypass.action == .bypass)
        #expect(bypass.match == FlowMatch())
    }

    @Test func defaultsOfOrderBurstAndExceededAction() throws {
        let bundle = loadFlowYAML(flowPolicyDocument("p", rules: """
        - action: PROXY
          rateLimit: {newFlowsPerSecond: 5}
        - action: PROXY
          rateLimit: {newFlowsPerSecond: 0.5}
        """))
        #expect(bundle.errors.isEmpty, "\(bundle.summary)")
        let policy = try #require(bundle.flowPolicies.first)
        #expect(policy.order == 0)
        // burst defaults to the rate (at least 1); exceeded flows are denied with a reset.
        #expect(policy.rules[0].rateLimit == FlowRateLimit(newFlowsPerSecond: 5, burst: 5, exceededAction: .deny, exceededDenyMode: .reset))
        #expect(policy.rules[1].rateLimit?.burst == 1)
    }

    @Test func badCIDRIsAnErrorAtItsListIndex() {
        let bundle = loadFlowYAML(flowPolicyDocument("p", rules: """
        - match:
            destinationCIDRs: [10.0.0.0/8, 10.0.0.0/33, "fd00::/129", "not-an-address"]
          action: DENY
        """))
        let at1 = bundle.issues(at: "spec.rules[0].match.destinationCIDRs[1]")
        #expect(at1.count == 1 && at1[0].severity == .error, "\(bundle.summary)")
        #expect(at1.first?.message.contains("10.0.0.0/33") == true)
        #expect(at1.first?.resource == "FlowPolicy default/p")
        #expect(bundle.issues(at: "spec.rules[0].match.destinationCIDRs[2]").map(\.severity) == [.error])
        #expect(bundle.issues(at: "spec.rules[0].match.destinationCIDRs[3]").map(\.severity) == [.error])
        #expect(bundle.issues(at: "spec.rules[0].match.destinationCIDRs[0]").isEmpty)
        // The good one is kept.
        #expect(bundle.flowPolicies.first?.rules.first?.match.destinationCIDRs == [cidr("10.0.0.0/8")])
    }

    @Test func badSourceCIDRIsAnError() {
        let bundle = loadFlowYAML(flowPolicyDocument("p", rules: """
        - match: {sourceCIDRs: ["10.0.0.1/8/2"]}
          action: BYPASS
        """))
        #expect(bundle.issues(at: "spec.rules[0].match.sourceCIDRs[0]").map(\.severity) == [.error], "\(bundle.summary)")
    }

    @Test(arguments: ["8100-8000", "0", "65536", "80-", "-80", "http", "1-2-3"])
    func badPortIsAnError(_ port: String) {
        let bundle = loadFlowYAML(flowPolicyDocument("p", rules: """
        - match:
            destinationPorts: [443, "\(port)"]
          action: DENY
        """))
        let issues = bundle.issues(at: "spec.rules[0].match.destinationPorts[1]")
        #expect(issues.map(\.severity) == [.error], "\(bundle.summary)")
        #expect(issues.first?.message.contains("'\(port)'") == true)
        #expect(bundle.flowPolicies.first?.rules.first?.match.destinationPorts == [PortRange(443)])
    }

    @Test func badUidIsAnError() {
        let bundle = loadFlowYAML(flowPolicyDocument("p", rules: """
        - match: {uids: [0, -1, root]}
          action: BYPASS
        """))
        #expect(bundle.issues(at: "spec.rules[0].match.uids[1]").map(\.severity) == [.error], "\(bundle.summary)")
        #expect(bundle.issues(at: "spec.rules[0].match.uids[2]").map(\.severity) == [.error])
        #expect(bundle.flowPolicies.first?.rules.first?.match.uids == [0])
    }

    @Test func unknownDirectionIsAnError() {
        let bundle = loadFlowYAML(flowPolicyDocument("p", rules: """
        - match: {direction: SIDEWAYS}
          action: BYPASS
        """))
        #expect(bundle.issues(at: "spec.rules[0].match.direction").map(\.severity) == [.error], "\(bundle.summary)")
    }

    @Test func unknownActionIsAnError() {
        let bundle = loadFlowYAML(flowPolicyDocument("p", rules: """
        - action: BYPASS
        - action: ALLOW
          denyMode: REJECT
        """))
        let action = bundle.issues(at: "spec.rules[1].action")
        #expect(action.map(\.severity) == [.error], "\(bundle.summary)")
        #expect(action.first?.message.contains("'ALLOW'") == true)
        #expect(action.first?.line == 7) // the line of `action: ALLOW` (1-based)
        #expect(bundle.issues(at: "spec.rules[1].denyMode").map(\.severity) == [.error])
        #expect(bundle.issues(at: "spec.rules[0].action").isEmpty)
    }

    @Test func missingActionIsAnError() {
        let bundle = loadFlowYAML(flowPolicyDocument("p", rules: """
        - name: forgot
          match: {destinationPorts: [22]}
        """))
        let issues = bundle.issues(at: "spec.rules[0].action")
        #expect(issues.map(\.severity) == [.error], "\(bundle.summary)")
        #expect(issues.first?.message.contains("needs an action") == true)
    }

    @Test(arguments: ["0", "-3", "fast"])
    func rateMustBeAboveZero(_ rate: String) {
        let bundle = loadFlowYAML(flowPolicyDocument("p", rules: """
        - action: PROXY
          rateLimit: {newFlowsPerSecond: \(rate), burst: 5}
        """))
        let issues = bundle.issues(at: "spec.rules[0].rateLimit.newFlowsPerSecond")
        #expect(!issues.isEmpty && issues.allSatisfy { $0.severity == .error }, "\(bundle.summary)")
    }

    @Test func missingRateIsAnError() {
        let bundle = loadFlowYAML(flowPolicyDocument("p", rules: """
        - action: PROXY
          rateLimit: {burst: 5}
        """))
        #expect(bundle.issues(at: "spec.rules[0].rateLimit.newFlowsPerSecond").map(\.severity) == [.error], "\(bundle.summary)")
    }

    @Test func burstBelowOneIsAnError() {
        let bundle = loadFlowYAML(flowPolicyDocument("p", rules: """
        - action: PROXY
          rateLimit: {newFlowsPerSecond: 5, burst: 0.5, exceededAction: PROXY}
        """))
        #expect(bundle.issues(at: "spec.rules[0].rateLimit.burst").map(\.severity) == [.error], "\(bundle.summary)")
    }

    @Test func unknownExceededActionIsAnError() {
        let bundle = loadFlowYAML(flowPolicyDocument("p", rules: """
        - action: PROXY
          rateLimit: {newFlowsPerSecond: 5, exceededAction: THROTTLE}
        """))
        #expect(bundle.issues(at: "spec.rules[0].rateLimit.exceededAction").map(\.severity) == [.error], "\(bundle.summary)")
    }

    @Test func hostWithoutServiceEntryIsAnError() {
        let yaml = """
        apiVersion: networking.istio.io/v1
        kind: ServiceEntry
        metadata: {name: known}
        spec:
          hosts: [known.example.com]
          ports: [{number: 443, name: https, protocol: TLS}]
          resolution: DNS
        ---
        \(flowPolicyDocument("hosts", rules: """
        - match: {hosts: [known.example.com, unknown.example.com]}
          action: DENY
        """))
        """
        let bundle = loadFlowYAML(yaml)
        let issues = bundle.issues(at: "spec.rules[0].match.hosts[1]")
        #expect(issues.map(\.severity) == [.error], "\(bundle.summary)")
        #expect(issues.first?.message.contains("'unknown.example.com'") == true)
        #expect(issues.first?.resource == "FlowPolicy default/hosts")
        #expect(issues.first?.document == 2)
        #expect(bundle.issues(at: "spec.rules[0].match.hosts[0]").isEmpty)
    }

    /// ServiceEntry hosts are lower-cased when read (host names are case-insensitive); a FlowPolicy
    /// naming the same host in another case should find it too.
    @Test func hostCaseDoesNotMatter() throws {
        let yaml = """
        apiVersion: networking.istio.io/v1
        kind: ServiceEntry
        metadata: {name: payments}
        spec:
          hosts: [Payments.Example.com]
          addresses: [240.0.0.9]
          ports: [{number: 443, name: https, protocol: TLS}]
          resolution: DNS
        ---
        \(flowPolicyDocument("hosts", rules: """
        - match: {hosts: [payments.example.com, Payments.Example.com]}
          action: DENY
        """))
        """
        let bundle = loadFlowYAML(yaml)
        // The lower-case spelling is fine.
        #expect(bundle.issues(at: "spec.rules[0].match.hosts[0]").isEmpty, "\(bundle.summary)")
        #expect(bundle.issues(at: "spec.rules[0].match.hosts[1]").isEmpty, "\(bundle.summary)")
        #expect(bundle.flowPolicies.first?.rules.first?.match.hosts == ["payments.example.com", "payments.example.com"])
    }

    /// The same check through the public entry point: a file on disk.
    @Test func hostWithoutServiceEntryThroughLoadPath() throws {
        let file = (NSTemporaryDirectory() as NSString).appendingPathComponent("interpose-flow-\(UUID().uuidString).yaml")
        try flowPolicyDocument("hosts", rules: """
        - match: {hosts: [nowhere.example.com]}
          action: DENY
        """).write(toFile: file, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: file) }
        let bundle = try ConfigLoader.load(path: file)
        let issues = bundle.issues(at: "spec.rules[0].match.hosts[0]")
        #expect(issues.map(\.severity) == [.error], "\(bundle.summary)")
        #expect(issues.first?.file == file)
    }

    @Test func unknownFieldsAreWarningsNotErrors() throws {
        let bundle = loadFlowYAML(flowPolicyDocument("p", rules: """
        - action: DENY
          priority: 3
          match:
            destinationPorts: [22]
            protocol: TCP
          rateLimit: {newFlowsPerSecond: 1, window: 10s}
        """) + "\n  selector: {app: web}\n")
        #expect(bundle.errors.isEmpty, "\(bundle.summary)")
        for path in ["spec.rules[0].priority", "spec.rules[0].match.protocol", "spec.rules[0].rateLimit.window", "spec.selector"] {
            #expect(bundle.issues(at: path).map(\.severity) == [.warning], "\(path): \(bundle.summary)")
        }
        // The known fields are still read.
        let rule = try #require(bundle.flowPolicies.first?.rules.first)
        #expect(rule.action == .deny && rule.match.destinationPorts == [PortRange(22)] && rule.rateLimit?.newFlowsPerSecond == 1)
    }

    @Test func policyWithoutRulesIsAWarning() {
        let bundle = loadFlowYAML("""
        apiVersion: interpose.dev/v1alpha1
        kind: FlowPolicy
        metadata: {name: empty}
        spec: {order: 3}
        """)
        #expect(bundle.errors.isEmpty, "\(bundle.summary)")
        #expect(bundle.issues(at: "spec.rules").map(\.severity) == [.warning])
        #expect(bundle.flowPolicies.first?.order == 3)
    }

    @Test func wrongAPIVersionIsNotAFlowPolicy() {
        let bundle = loadFlowYAML("""
        apiVersion: networking.istio.io/v1
        kind: FlowPolicy
        metadata: {name: p}
        spec:
          rules: [{action: DENY}]
        """)
        #expect(bundle.flowPolicies.isEmpty)
        #expect(bundle.issues(at: "kind").map(\.severity) == [.warning])
    }
}

@Suite("FlowPolicy rule names")
struct FlowPolicyRuleNameTests {
    /// Metrics and carried-over rate limiters are keyed by rule name: two rules may not share one.
    @Test func duplicateRuleNamesAreRefused() {
        let bundle = loadFlowYAML(flowPolicyDocument("dups", rules: """
        - name: same
          match: {destinationPorts: ["80"]}
          action: DENY
        - name: same
          match: {destinationPorts: ["81"]}
          action: BYPASS
        """))
        #expect(bundle.issues(at: "spec.rules[1].name").contains { $0.severity == .error && $0.message.contains("unique") }, "\(bundle.summary)")
    }
}
