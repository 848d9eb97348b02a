import Foundation
import InterposeCapture
import InterposeCaptureRuntime
import Testing

@Suite("Capture planner")
struct PlannerTests {
    func plan(_ args: [String], facts: HostFacts = HostFacts()) throws -> CapturePlan {
        CapturePlanner(options: try CaptureArguments.parse(args).validOptions, facts: facts).plan()
    }

    func allRules(_ p: CapturePlan) -> [NftRule] { p.table.chains.flatMap(\.rules) }

    @Test func everyRuleHasACounterAndAComment() throws {
        let p = try plan(["-m", "tproxy", "--queue", "0-1", "--capture-dns", "--drop-invalid", "-x", "10.0.0.0/8", "-c", "eth1", "--host-mode"])
        for r in allRules(p) {
            #expect(r.text.contains(" counter ") || r.text.hasPrefix("counter "))
            #expect(!r.comment.isEmpty)
        }
    }

    @Test func everyIPv4AddressRuleHasAnIPv6Twin() throws {
        let p = try plan(["-x", "10.0.0.0/8,fd00::/8", "-i", "10.0.0.0/8,fd00::/8", "-m", "tproxy"])
        let rules = allRules(p).map(\.match)
        #expect(rules.filter { $0.contains("ip saddr") }.count == rules.filter { $0.contains("ip6 saddr") }.count)
        #expect(rules.filter { $0.contains("ip daddr") }.count == rules.filter { $0.contains("ip6 daddr") }.count)
        #expect(p.policyRoutes.map(\.family) == [.v4, .v6])
        #expect(p.loopbackAddresses == [.inboundPassthroughV6])
    }

    @Test func noIPv6HostGetsNoIPv6Rules() throws {
        let p = try plan(["-x", "10.0.0.0/8,fd00::/8", "-m", "tproxy", "--queue", "1"], facts: HostFacts(ipv6: false))
        #expect(!p.table.definition.contains("ip6"))
        #expect(!p.table.definition.contains("::"))
        #expect(p.policyRoutes.map(\.family) == [.v4])
        #expect(p.xtablesRules.allSatisfy { $0.family == .v4 })
        #expect(p.loopbackAddresses.isEmpty)
        #expect(p.notes.contains { $0.contains("no IPv6") && $0.contains("fd00::/8") })
    }

    @Test func portsAndCIDRsLiveInSets() throws {
        let p = try plan(["-o", "3306,5432", "-x", "10.0.0.0/8,192.168.0.0/16", "-d", "8081"])
        let sets = Dictionary(uniqueKeysWithValues: p.table.sets.map { ($0.name, $0.elements) })
        #expect(sets["outbound_skip_ports"] == ["3306", "5432"])
        #expect(sets["outbound_skip_v4"] == ["10.0.0.0/8", "192.168.0.0/16"])
        #expect(sets["inbound_skip_ports"] == ["8081", "15000", "15020-15021", "15090"])
        #expect(p.table.chain("outbound")!.rules.contains { $0.match == "ip daddr @outbound_skip_v4" })
    }

    @Test func proxyTrafficIsExemptBeforeTheRedirect() throws {
        let out = try plan([]).table.chain("outbound")!.rules
        let uid = out.firstIndex { $0.match == "meta skuid { 1337 }" }!
        let redirect = out.firstIndex { $0.action == "redirect to :15001" }!
        #expect(uid < redirect)
        #expect(out.last!.action == "redirect to :15001")
    }

    @Test func inboundOffMeansNoPreroutingAndNoOwnPodIPRedirect() throws {
        let p = try plan(["-b", ""])
        #expect(p.table.chain("prerouting") == nil)
        #expect(!allRules(p).contains { $0.action.contains(":15006") })
        #expect(p.loopbackAddresses.isEmpty)
    }

    @Test func outboundOffKeepsNoOutboundRedirect() throws {
        let p = try plan(["-i", ""])
        #expect(!allRules(p).contains { $0.action.contains(":15001") })
        // Istio's -q still captures its ports with -i ''.
        let ports = try plan(["-i", "", "-q", "3306"])
        #expect(allRules(ports).filter { $0.action.contains(":15001") }.map(\.match) == ["tcp dport @outbound_ports"])
        #expect(try plan(["-b", ""]).table.sets.allSatisfy { $0.name != "inbound_skip_ports" })
    }

    @Test func queueGateQueuesExactlyWhatTheNatChainCaptures() throws {
        let p = try plan(["--queue", "2", "-x", "10.0.0.0/8", "-o", "9090", "-q", "443"])
        let nat = p.table.chain("outbound")!.rules.filter { $0.action == "return" || $0.action.contains("redirect to :15006") }.map { $0.match.replacingOccurrences(of: " meta l4proto tcp", with: "") }
        let gate = p.table.chain("flow_gate_output")!.rules.map(\.match)
        for m in nat { #expect(gate.contains(m), "gate lacks \(m)") }
        // The -q ports captured in nat are queued in the gate at the same point.
        #expect(p.table.chain("outbound")!.rules.contains { $0.match == "tcp dport @outbound_ports" && $0.action.hasSuffix("redirect to :15001") })
        #expect(p.table.chain("flow_gate_output")!.rules.contains { $0.match == "tcp dport @outbound_ports" && $0.action.contains("0x00100000") })
        #expect(p.xtablesRules.count == 4)
        #expect(p.xtablesRules[0].listed == "-A OUTPUT -m mark --mark 0x100000/0x700000 -m comment --comment \"interpose flow queue\" -j NFQUEUE --queue-num 2 --queue-bypass")
    }

    @Test func nativeQueueNeedsNoXtables() throws {
        let p = try plan(["--queue", "0-3", "--no-queue-bypass"], facts: HostFacts(nativeNftQueue: true))
        #expect(p.xtablesRules.isEmpty)
        #expect(p.table.chain("flow_gate_output")!.rules.last!.action.hasSuffix("queue num 0-3 fanout"))
        let open = try plan(["--queue", "2"], facts: HostFacts(nativeNftQueue: true))
        #expect(open.table.chain("flow_gate_output")!.rules.last!.action.hasSuffix("queue num 2 bypass"))
    }

    @Test func queueRangeUsesQueueBalance() throws {
        let p = try plan(["--queue", "4-7", "--no-queue-bypass"])
        #expect(p.xtablesRules[0].spec.suffix(2) == ["--queue-balance", "4:7"])
    }

    @Test func hostModeKeepsSSHPortsAndOnlyLocalTraffic() throws {
        let p = try plan(["--host-mode"], facts: HostFacts(sshPorts: [PortRange(2222)]))
        #expect(p.table.sets.first { $0.name == "inbound_skip_ports" }!.elements.contains("2222"))
        #expect(p.table.chain("inbound")!.rules.contains { $0.match == "fib daddr type != local" })
        let fallback = try plan(["--host-mode"], facts: HostFacts(sshPorts: []))
        #expect(fallback.table.sets.first { $0.name == "inbound_skip_ports" }!.elements.contains("22"))
        #expect(fallback.notes.contains { $0.contains("assumed") })
        let none = try plan(["--host-mode", "--ssh-ports", ""], facts: HostFacts(sshPorts: [PortRange(22)]))
        #expect(!none.table.sets.first { $0.name == "inbound_skip_ports" }!.elements.contains("22"))
    }

    @Test func tproxyUsesMarkRoutesAndNoNatPrerouting() throws {
        let p = try plan(["-m", "tproxy", "-t", "1400", "-r", "140"])
        #expect(p.table.chain("prerouting") == nil)
        let tp = p.table.chain("tproxy_prerouting")!
        #expect(tp.hook?.priority == -140, "after iptables-nft's mangle NFQUEUE rule")
        #expect(tp.rules.contains { $0.action == "tproxy ip to :15006 meta mark set 1400 accept" })
        #expect(p.policyRoutes.first!.ruleAdd == ["ip", "-4", "rule", "add", "fwmark", "1400", "lookup", "140"])
        // The table records the routing it owns, so cleanup removes it even when run with other options.
        #expect(p.table.comment.contains("tproxy=1400:140"))
    }

    @Test func scriptReplacesTheTableAtomically() throws {
        let s = try plan([]).table.script
        #expect(s.hasPrefix("table inet interpose\ndelete table inet interpose\ntable inet interpose {\n"))
    }
}
