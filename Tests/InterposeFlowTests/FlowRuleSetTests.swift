import Foundation
import InterposeCapture
import InterposeConfig
import Testing
@testable import InterposeFlow

/// FlowRuleSet: compile order, first-match decisions, host addresses, rate limits, kernel verdicts.
@Suite struct FlowRuleSetTests {
    static let second: UInt64 = 1_000_000_000
    static let t0: UInt64 = 500 * second

    func decide(_ rules: FlowRuleSet, _ flow: FlowTuple, _ direction: FlowDirection = .outbound, uid: UInt32? = nil, now: UInt64 = t0) -> FlowDecision {
        rules.decide(flow, direction: direction, uid: uid, now: now)
    }

    // MARK: Order

    @Test func policiesAreOrderedByOrderThenNamespaceAndName() {
        // Written in the "wrong" order on purpose: the loader order must not matter.
        let yaml = [
            flowPolicyDocument("zz-late", namespace: "a", order: 5, rules: "- {name: late, action: DENY}"),
            flowPolicyDocument("b-policy", namespace: "ns2", order: 1, rules: "- {name: ns2-rule, action: BYPASS}"),
            flowPolicyDocument("a-policy", namespace: "ns2", order: 1, rules: "- {name: ns2-a, action: PROXY, match: {destinationPorts: [22]}}"),
            flowPolicyDocument("zz", namespace: "ns1", order: 1, rules: "- {name: ns1-rule, action: DENY, denyMode: DROP, match: {destinationPorts: [22, 80]}}"),
        ].joined(separator: "\n---\n")
        let (rules, bundle) = compileRules(yaml)
        #expect(bundle.errors.isEmpty, "\(bundle.summary)")
        #expect(rules.ruleNames.map(\.rule) == ["ns1-rule", "ns2-a", "ns2-rule", "late"])
        #expect(rules.ruleNames.map(\.policy) == ["ns1/zz", "ns2/a-policy", "ns2/b-policy", "a/zz-late"])
        // ns1 (order 1) comes before ns2 (order 1) whatever the names, and both before order 5.
        #expect(decide(rules, tcpFlow("10.0.0.1", "10.0.0.2", port: 22)) == FlowDecision(action: .denyDrop, policy: "ns1/zz", rule: "ns1-rule", rateLimited: false))
        #expect(decide(rules, tcpFlow("10.0.0.1", "10.0.0.2", port: 443)).rule == "ns2-rule")
    }

    @Test func negativeOrderComesFirst() {
        let yaml = [
            flowPolicyDocument("zero", rules: "- {action: DENY}"),
            flowPolicyDocument("minus", order: -1, rules: "- {action: BYPASS}"),
        ].joined(separator: "\n---\n")
        let (rules, _) = compileRules(yaml)
        #expect(decide(rules, tcpFlow("10.0.0.1", "10.0.0.2", port: 1)).policy == "default/minus")
    }

    @Test func rulesWithinAPolicyKeepTheirOrder() {
        let (rules, _) = compileRules(flowPolicyDocument("p", rules: """
        - {name: ssh-bypass, action: BYPASS, match: {destinationPorts: [22]}}
        - {name: deny-all, action: DENY}
        - {name: never, action: BYPASS, match: {destinationPorts: [22]}}
        """))
        #expect(decide(rules, tcpFlow("10.0.0.1", "10.0.0.2", port: 22)).rule == "ssh-bypass")
        #expect(decide(rules, tcpFlow("10.0.0.1", "10.0.0.2", port: 23)) == FlowDecision(action: .denyReset, policy: "default/p", rule: "deny-all", rateLimited: false))
    }

    @Test func noRuleMatchedGoesToTheProxy() {
        let (rules, _) = compileRules(flowPolicyDocument("p", rules: "- {action: DENY, match: {destinationPorts: [22]}}"))
        let d = decide(rules, tcpFlow("10.0.0.1", "10.0.0.2", port: 80))
        #expect(d == .noRuleMatched)
        #expect(d.action == .proxy && d.policy == "-" && d.rule == "-" && !d.rateLimited)
        #expect(decide(.empty, tcpFlow("10.0.0.1", "10.0.0.2", port: 22)) == .noRuleMatched)
        #expect(FlowRuleSet.empty.isEmpty && FlowRuleSet.empty.ruleCount == 0)
    }

    // MARK: Match fields

    @Test func directionFilter() {
        let (rules, _) = compileRules(flowPolicyDocument("p", rules: """
        - {name: in, action: DENY, match: {direction: INBOUND}}
        - {name: out, action: BYPASS, match: {direction: OUTBOUND}}
        """))
        let flow = tcpFlow("10.0.0.1", "10.0.0.2", port: 80)
        #expect(decide(rules, flow, .inbound).rule == "in")
        #expect(decide(rules, flow, .outbound).rule == "out")
    }

    @Test func uidFilterNeedsAKnownUid() {
        let (rules, _) = compileRules(flowPolicyDocument("p", rules: """
        - {name: by-uid, action: BYPASS, match: {uids: [0, 1337]}}
        - {name: fallback, action: DENY}
        """))
        let flow = tcpFlow("10.0.0.1", "10.0.0.2", port: 80)
        #expect(decide(rules, flow, uid: 1337).rule == "by-uid")
        #expect(decide(rules, flow, uid: 0).rule == "by-uid")
        #expect(decide(rules, flow, uid: 1000).rule == "fallback")
        // No uid from the kernel (an inbound packet): a uid rule cannot match.
        #expect(decide(rules, flow, uid: nil).rule == "fallback")
    }

    @Test func portsAndRanges() {
        let (rules, _) = compileRules(flowPolicyDocument("p", rules: """
        - {name: ports, action: DENY, match: {destinationPorts: [443, "8000-8100", 1]}}
        """))
        for port: UInt16 in [443, 8000, 8050, 8100, 1] {
            #expect(decide(rules, tcpFlow("10.0.0.1", "10.0.0.2", port: port)).rule == "ports", "port \(port)")
        }
        for port: UInt16 in [442, 444, 7999, 8101, 2, 65535] {
            #expect(decide(rules, tcpFlow("10.0.0.1", "10.0.0.2", port: port)) == .noRuleMatched, "port \(port)")
        }
        // The source port plays no part.
        #expect(decide(rules, tcpFlow("10.0.0.1", "10.0.0.2", port: 80, sourcePort: 443)) == .noRuleMatched)
    }

    @Test func destinationCIDRsOfBothFamilies() {
        let (rules, _) = compileRules(flowPolicyDocument("p", rules: """
        - name: nested
          match: {destinationCIDRs: [10.1.2.0/24, 10.0.0.0/8, 10.1.0.0/16, "2001:db8::/32", "2001:db8:1::1"]}
          action: DENY
        """))
        for d in ["10.0.0.1", "10.1.2.3", "10.1.9.9", "10.255.255.255", "2001:db8::1", "2001:db8:ffff::1", "2001:db8:1::1"] {
            #expect(decide(rules, tcpFlow("192.168.0.1", d, port: 80)).rule == "nested", "\(d)")
        }
        for d in ["11.0.0.0", "9.255.255.255", "2001:db9::1", "::a00:1"] {
            #expect(decide(rules, tcpFlow("192.168.0.1", d, port: 80)) == .noRuleMatched, "\(d)")
        }
    }

    @Test func sourceCIDRsAndSlashZero() {
        let (rules, _) = compileRules(flowPolicyDocument("p", rules: """
        - {name: lan, action: BYPASS, match: {sourceCIDRs: [192.168.1.0/24, "fe80::/10"]}}
        - {name: any-v4, action: DENY, match: {sourceCIDRs: [0.0.0.0/0]}}
        - {name: any-v6, action: DENY, denyMode: DROP, match: {sourceCIDRs: ["::/0"]}}
        """))
        #expect(decide(rules, tcpFlow("192.168.1.77", "8.8.8.8", port: 53)).rule == "lan")
        #expect(decide(rules, tcpFlow("fe80::1", "2001:db8::1", port: 53)).rule == "lan")
        // 0.0.0.0/0 takes every IPv4 source and no IPv6 one; ::/0 the other way round.
        #expect(decide(rules, tcpFlow("192.168.2.1", "8.8.8.8", port: 53)).rule == "any-v4")
        #expect(decide(rules, tcpFlow("255.255.255.255", "8.8.8.8", port: 53)).rule == "any-v4")
        #expect(decide(rules, tcpFlow("2001:db8::5", "2001:db8::1", port: 53)).rule == "any-v6")
        #expect(decide(rules, tcpFlow("::", "2001:db8::1", port: 53)).action == .denyDrop)
    }

    @Test func allMatchFieldsMustHold() {
        let (rules, _) = compileRules(flowPolicyDocument("p", rules: """
        - name: narrow
          match: {direction: OUTBOUND, sourceCIDRs: [10.0.0.0/8], destinationCIDRs: [172.16.0.0/12], destinationPorts: [5432], uids: [999]}
          action: DENY
        """))
        let good = tcpFlow("10.0.0.1", "172.16.0.9", port: 5432)
        #expect(decide(rules, good, uid: 999).rule == "narrow")
        #expect(decide(rules, good, .inbound, uid: 999) == .noRuleMatched)
        #expect(decide(rules, good, uid: 998) == .noRuleMatched)
        #expect(decide(rules, tcpFlow("11.0.0.1", "172.16.0.9", port: 5432), uid: 999) == .noRuleMatched)
        #expect(decide(rules, tcpFlow("10.0.0.1", "172.32.0.9", port: 5432), uid: 999) == .noRuleMatched)
        #expect(decide(rules, tcpFlow("10.0.0.1", "172.16.0.9", port: 5433), uid: 999) == .noRuleMatched)
    }

    // MARK: Hosts

    static let serviceEntries = """
    apiVersion: networking.istio.io/v1
    kind: ServiceEntry
    metadata: {name: db}
    spec:
      hosts: [db.internal]
      addresses: [240.0.0.5]
      ports: [{number: 5432, name: tcp, protocol: TCP}]
      resolution: STATIC
      endpoints: [{address: 10.9.0.1}, {address: "fd00::9"}]
    ---
    apiVersion: networking.istio.io/v1
    kind: ServiceEntry
    metadata: {name: api}
    spec:
      hosts: [api.example.com]
      ports: [{number: 443, name: https, protocol: TLS}]
      resolution: DNS
    ---
    apiVersion: networking.istio.io/v1
    kind: ServiceEntry
    metadata: {name: mirror}
    spec:
      hosts: [mirror.example.com]
      ports: [{number: 443, name: https, protocol: TLS}]
      resolution: DNS
      endpoints: [{address: mirror-a.example.net}, {address: 198.51.100.99}]
    ---
    apiVersion: networking.istio.io/v1
    kind: ServiceEntry
    metadata: {name: pending}
    spec:
      hosts: [pending.example.com]
      ports: [{number: 443, name: https, protocol: TLS}]
      resolution: DNS
    """

    static let resolved = [
        "api.example.com": ["93.184.216.34", "2606:2800:220:1::1"],
        "mirror-a.example.net": ["198.51.100.7"],
        // The host name of a ServiceEntry with endpoints is not what is dialled: ignored.
        "mirror.example.com": ["203.0.113.1"],
    ]

    @Test func hostAddressesFromVIPsEndpointsAndDNS() throws {
        let bundle = loadFlowYAML(Self.serviceEntries)
        #expect(bundle.errors.isEmpty, "\(bundle.summary)")
        let addresses = FlowRuleSet.hostAddresses(bundle, resolved: Self.resolved)
        #expect(Set(addresses("db.internal")) == [cidr("240.0.0.5"), cidr("10.9.0.1"), cidr("fd00::9")])
        #expect(Set(addresses("api.example.com")) == [cidr("93.184.216.34"), cidr("2606:2800:220:1::1")])
        #expect(Set(addresses("mirror.example.com")) == [cidr("198.51.100.7"), cidr("198.51.100.99")])
        #expect(addresses("pending.example.com").isEmpty)
        #expect(addresses("nobody.example.com").isEmpty)
    }

    @Test func hostRulesMatchTheHostAddresses() {
        let yaml = Self.serviceEntries + "\n---\n" + flowPolicyDocument("hosts", rules: """
        - {name: db, action: DENY, match: {hosts: [db.internal]}}
        - {name: external, action: BYPASS, match: {hosts: [api.example.com, mirror.example.com], destinationPorts: [443]}}
        """)
        let (rules, bundle) = compileRules(yaml, resolved: Self.resolved)
        #expect(bundle.errors.isEmpty, "\(bundle.summary)")
        for d in ["240.0.0.5", "10.9.0.1", "fd00::9"] {
            #expect(decide(rules, tcpFlow("10.0.0.1", d, port: 5432)).rule == "db", "\(d)")
        }
        for d in ["93.184.216.34", "2606:2800:220:1::1", "198.51.100.7", "198.51.100.99"] {
            #expect(decide(rules, tcpFlow("10.0.0.1", d, port: 443)).rule == "external", "\(d)")
        }
        #expect(decide(rules, tcpFlow("10.0.0.1", "93.184.216.34", port: 80)) == .noRuleMatched)
        #expect(decide(rules, tcpFlow("10.0.0.1", "203.0.113.1", port: 443)) == .noRuleMatched)
        #expect(decide(rules, tcpFlow("10.0.0.1", "10.9.0.2", port: 5432)) == .noRuleMatched)
    }

    @Test func hostsThatResolveToNothingMatchNothing() {
        let yaml = Self.serviceEntries + "\n---\n" + flowPolicyDocument("hosts", rules: """
        - {name: pending, action: DENY, match: {hosts: [pending.example.com]}}
        - {name: pending-plus-cidr, action: BYPASS, match: {hosts: [pending.example.com], destinationCIDRs: [192.0.2.0/24]}}
        """)
        let (rules, bundle) = compileRules(yaml, resolved: [:])
        #expect(bundle.errors.isEmpty, "\(bundle.summary)")
        // Not "an empty destination list matches any address": the deny rule must not catch everything.
        for d in ["10.0.0.2", "8.8.8.8", "2001:db8::1", "240.0.0.5"] {
            #expect(decide(rules, tcpFlow("10.0.0.1", d, port: 443)) == .noRuleMatched, "\(d)")
        }
        // A rule that also lists CIDRs still matches those.
        #expect(decide(rules, tcpFlow("10.0.0.1", "192.0.2.8", port: 443)).rule == "pending-plus-cidr")
        // Once the name resolves, a recompile picks the address up.
        let (later, _) = compileRules(yaml, resolved: ["pending.example.com": ["198.18.0.1"]])
        #expect(decide(later, tcpFlow("10.0.0.1", "198.18.0.1", port: 443)).rule == "pending")
        #expect(decide(later, tcpFlow("10.0.0.1", "8.8.8.8", port: 443)) == .noRuleMatched)
    }

    // MARK: Rate limits

    static let limited = flowPolicyDocument("limits", rules: """
    - name: per-source
      match: {direction: INBOUND, destinationPorts: [22]}
      action: PROXY
      rateLimit: {newFlowsPerSecond: 3, burst: 3, exceededAction: DENY, exceededDenyMode: DROP}
    """)

    @Test func rateLimitPerSource() {
        let (rules, _) = compileRules(Self.limited)
        let a = tcpFlow("203.0.113.1", "10.0.0.1", port: 22)
        let b = tcpFlow("203.0.113.2", "10.0.0.1", port: 22)
        for i in 0..<3 {
            #expect(decide(rules, a, .inbound) == FlowDecision(action: .proxy, policy: "default/limits", rule: "per-source", rateLimited: false), "flow \(i)")
        }
        #expect(decide(rules, a, .inbound) == FlowDecision(action: .denyDrop, policy: "default/limits", rule: "per-source", rateLimited: true))
        // Another source has its own bucket.
        #expect(decide(rules, b, .inbound).rateLimited == false)
        // Tokens come back only when the one-second interval ends: not a third of the way in.
        let later = Self.t0 + Self.second / 3 + 1_000
        #expect(decide(rules, a, .inbound, now: later).rateLimited == true)
        // A full second refills the bucket.
        let next = Self.t0 + Self.second
        for _ in 0..<3 { #expect(decide(rules, a, .inbound, now: next).rateLimited == false) }
        #expect(decide(rules, a, .inbound, now: next).rateLimited == true)
    }

    @Test func exceededActionCanBeBypassOrReset() {
        let (rules, _) = compileRules(flowPolicyDocument("p", rules: """
        - {name: soft, action: DENY, rateLimit: {newFlowsPerSecond: 1, burst: 1, exceededAction: BYPASS}, match: {destinationPorts: [80]}}
        - {name: hard, action: BYPASS, rateLimit: {newFlowsPerSecond: 1, burst: 1}, match: {destinationPorts: [81]}}
        """))
        let soft = tcpFlow("10.0.0.1", "10.0.0.2", port: 80)
        #expect(decide(rules, soft).action == .denyReset)
        #expect(decide(rules, soft) == FlowDecision(action: .bypass, policy: "default/p", rule: "soft", rateLimited: true))
        let hard = tcpFlow("10.0.0.1", "10.0.0.2", port: 81)
        #expect(decide(rules, hard).action == .bypass)
        #expect(decide(rules, hard) == FlowDecision(action: .denyReset, policy: "default/p", rule: "hard", rateLimited: true))
    }

    @Test func limiterBucketsCarryOverAnUnchangedRule() {
        let (first, _) = compileRules(Self.limited)
        let a = tcpFlow("203.0.113.1", "10.0.0.1", port: 22)
        for _ in 0..<3 { _ = decide(first, a, .inbound) }
        #expect(decide(first, a, .inbound).rateLimited)
        // A reload with the same rule keeps the emptied bucket: no fresh burst.
        let (second, _) = compileRules(Self.limited, previous: first)
        #expect(decide(second, a, .inbound).rateLimited)
        // A reload without `previous` starts afresh.
        let (fresh, _) = compileRules(Self.limited)
        #expect(!decide(fresh, a, .inbound).rateLimited)
    }

    @Test func limiterBucketsResetWhenTheRateChanges() {
        let (first, _) = compileRules(Self.limited)
        let a = tcpFlow("203.0.113.1", "10.0.0.1", port: 22)
        for _ in 0..<4 { _ = decide(first, a, .inbound) }
        #expect(decide(first, a, .inbound).rateLimited)
        let changed = Self.limited.replacingOccurrences(of: "newFlowsPerSecond: 3", with: "newFlowsPerSecond: 4")
        let (second, _) = compileRules(changed, previous: first)
        #expect(!decide(second, a, .inbound).rateLimited)
        let burstChanged = Self.limited.replacingOccurrences(of: "burst: 3", with: "burst: 2")
        let (third, _) = compileRules(burstChanged, previous: first)
        #expect(!decide(third, a, .inbound).rateLimited)
    }

    // MARK: Kernel verdicts

    @Test func kernelVerdictsSetTheFlowMarkAndKeepOtherBits() {
        let queuedMark: UInt32 = 0x0010_0539 // FlowMark.queued | the TPROXY mark 1337
        func verdict(_ action: FlowDecision.Action, _ mark: UInt32 = queuedMark) -> KernelVerdict {
            FlowDecision(action: action, policy: "p", rule: "r", rateLimited: false).kernelVerdict(packetMark: mark)
        }
        #expect(verdict(.bypass) == KernelVerdict(accept: true, mark: 0x0040_0539))
        #expect(verdict(.proxy) == KernelVerdict(accept: true, mark: 0x0020_0539))
        #expect(verdict(.denyReset) == KernelVerdict(accept: true, mark: 0x0030_0539))
        #expect(verdict(.denyDrop) == KernelVerdict(accept: false, mark: nil))
        #expect(FlowDecision.noRuleMatched.kernelVerdict(packetMark: queuedMark) == KernelVerdict(accept: true, mark: FlowMark.proxy | 0x539))
        // Bits outside the flow field (high bits, low bits) are untouched; the old verdict is replaced.
        #expect(verdict(.bypass, 0xF07F_FFFF) == KernelVerdict(accept: true, mark: 0xF04F_FFFF))
        #expect(verdict(.proxy, 0) == KernelVerdict(accept: true, mark: FlowMark.proxy))
        #expect(FlowMark.verdict(of: verdict(.denyReset, FlowMark.bypass).mark ?? 0) == FlowMark.denyReset)
    }
}
