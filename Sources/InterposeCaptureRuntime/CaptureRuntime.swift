import Foundation
import InterposeCapture
import InterposeKernel

/// `apply`, `cleanup`, `verify`, `render`: one generator (`CapturePlanner`) drives all four.
public struct CaptureRuntime: Sendable {
    let runner: CommandRunner
    /// Whether this process may change the network configuration (injected so tests can run unprivileged).
    let privileged: @Sendable () -> Bool
    var system: CaptureSystem { CaptureSystem(runner: runner) }

    public init(runner: CommandRunner = ProcessCommandRunner(),
                privileged: @escaping @Sendable () -> Bool = { Privileges.canAdministerNetwork }) {
        self.runner = runner
        self.privileged = privileged
    }

    // MARK: - checks before anything changes

    func requireTools(for options: CaptureOptions, facts: HostFacts) throws {
        if runner.which("nft") == nil { throw CaptureError.missingTool("nft", package: "nftables", why: "capture rules are nft rules") }
        if options.queue != nil && !facts.nativeNftQueue && runner.which("iptables-nft") == nil {
            throw CaptureError.missingTool("iptables-nft", package: "iptables", why: "--queue needs the xtables NFQUEUE target on this kernel")
        }
        if runner.which("ip") == nil { throw CaptureError.missingTool("ip", package: "iproute2", why: "TPROXY routes and the ::6 address are set with ip") }
    }

    func requirePrivileges() throws {
        guard privileged() else { throw CaptureError.notPrivileged }
    }

    /// Facts for planning; the kernel is asked only about what the options use.
    func facts(for options: CaptureOptions, probe report: KernelProbe.Report? = nil) throws -> HostFacts {
        let report = report ?? KernelProbe(runner: runner, privileged: privileged()).run(wantSSH: options.hostMode && options.sshPorts == nil)
        if options.mode == .tproxy && options.capturesInbound {
            if case .no(let why) = report.tproxy {
                throw CaptureError("--mode/-m tproxy: this kernel has no TPROXY support (\(why)); use --mode redirect", exitCode: 5)
            }
        }
        if options.queue != nil && !report.nativeNftQueue.isYes, case .no(let why) = report.xtablesNFQueue {
            throw CaptureError("--queue: neither the native nft queue expression nor the xtables NFQUEUE target is available (\(why))", exitCode: 5)
        }
        return report.hostFacts
    }

    // MARK: - render

    /// The ruleset `apply` would install, without changing anything. Works unprivileged (kernel features
    /// it cannot ask about are assumed absent, which the header says).
    public func render(_ options: CaptureOptions) -> String {
        let report = KernelProbe(runner: runner, privileged: privileged()).run(wantSSH: options.hostMode && options.sshPorts == nil)
        let facts = report.hostFacts
        let planner = CapturePlanner(options: options, facts: facts, owned: freshOwned(options, facts: facts, live: nil))
        return PlanText.render(planner.plan(), options: options, facts: facts)
    }

    /// What an apply on this host would record as created by us.
    func freshOwned(_ options: CaptureOptions, facts: HostFacts, live: LiveCapture?) -> OwnedResources {
        OwnedResources.expected(for: CapturePlanner(options: options, facts: facts).plan(), previous: live?.owned,
                                loopbackV6Present: live?.loopbackV6Present ?? false,
                                xtablesMangleExists: live?.xtablesMangleExists ?? [:])
    }

    // MARK: - apply

    public struct ApplyResult: Sendable {
        public var plan: CapturePlan
        public var changed: Bool
    }

    /// Installs the plan: the nft table in one atomic transaction, then the xtables queue rules, TPROXY
    /// routing and the ::6 address. If a later step fails, the earlier ones are put back as they were.
    public func apply(_ options: CaptureOptions) throws -> ApplyResult {
        if runner.which("nft") == nil { throw CaptureError.missingTool("nft", package: "nftables", why: "capture rules are nft rules") }
        try requirePrivileges()
        let facts = try facts(for: options)
        try requireTools(for: options, facts: facts)
        if options.hostMode && options.sshPorts == nil && facts.sshPorts.isEmpty {
            throw CaptureError("--host-mode: no listening sshd was found with 'ss -ltnp' (seeing another user's sockets needs root or CAP_SYS_PTRACE); give the ssh ports with --ssh-ports 22 (or --ssh-ports '' on a host without ssh) so capture cannot cut you off", exitCode: 5)
        }
        let sys = system
        let before = sys.read(ipv6: facts.ipv6)
        let owned = freshOwned(options, facts: facts, live: before)
        let plan = CapturePlanner(options: options, facts: facts, owned: owned).plan()

        // An unchanged table is left alone, so a second apply keeps its counters and its place.
        let planHash = CaptureRecord.fingerprint(plan.table.definition)
        let unchanged = before.tableExists && recordMatches(planHash: planHash)
        if !unchanged {
            let r = runner.run(["nft", "-f", "-"], input: plan.table.script)
            guard r.succeeded else {
                throw CaptureError("nft rejected the ruleset; nothing was changed:\n\(r.message)")
            }
            // Best effort: without the record, verify compares the long way.
            if let live = liveCanonical() {
                _ = runner.run(["nft", "-f", "-"], input: CaptureRecord(plan: planHash, live: CaptureRecord.fingerprint(live)).script)
            }
        }
        do {
            try applySidePieces(plan, before: before, owned: owned)
        } catch {
            restore(before, ipv6: facts.ipv6, planned: plan)
            throw CaptureError("\(error)\nthe previous ruleset was put back")
        }
        let after = sys.read(ipv6: facts.ipv6)
        let sideChanged = after.xtablesRules != before.xtablesRules || after.loopbackV6Present != before.loopbackV6Present
            || routes(of: after.owned, ipv6: facts.ipv6) != routes(of: before.owned, ipv6: facts.ipv6)
        return ApplyResult(plan: plan, changed: !unchanged || sideChanged)
    }

    func applySidePieces(_ plan: CapturePlan, before: LiveCapture, owned: OwnedResources) throws {
        let sys = system
        try sys.reconcileXtables(wanted: plan.xtablesRules, live: before.xtablesRules)
        let previousRoutes = routes(of: before.owned, ipv6: true)
        sys.removeRoutes(previousRoutes.filter { !plan.policyRoutes.contains($0) })
        try sys.installRoutes(plan.policyRoutes)
        for a in plan.loopbackAddresses where !sys.hasLoopbackV6() { try sys.must(a.add) }
        if plan.loopbackAddresses.isEmpty, before.owned?.loopbackV6Added == true, sys.hasLoopbackV6() {
            try sys.must(LoopbackAddress.inboundPassthroughV6.delete)
        }
        if before.owned?.xtablesMangleV4Created == true && !owned.xtablesMangleV4Created { sys.dropEmptyMangleTable(.v4) }
        if before.owned?.xtablesMangleV6Created == true && !owned.xtablesMangleV6Created { sys.dropEmptyMangleTable(.v6) }
    }

    /// Puts back what `before` had: the old table (or none), the old xtables rules, routes and ::6.
    func restore(_ before: LiveCapture, ipv6: Bool, planned: CapturePlan) {
        let sys = system
        let name = "\(NftTable.family) \(NftTable.name)"
        if let old = before.tableText {
            _ = runner.run(["nft", "-f", "-"], input: "table \(name)\ndelete table \(name)\n" + old)
        } else {
            _ = runner.run(["nft", "delete", "table", NftTable.family, NftTable.name])
        }
        let now = sys.read(ipv6: ipv6)
        for family in IPFamily.allCases {
            for line in now.xtablesRules[family] ?? [] where !(before.xtablesRules[family] ?? []).contains(line) {
                var words = ShellWords.split(line)
                words[0] = "-D"
                _ = runner.run([family.xtablesCommand, "-w", "-t", "mangle"] + words)
            }
            for line in before.xtablesRules[family] ?? [] where !(now.xtablesRules[family] ?? []).contains(line) {
                _ = runner.run([family.xtablesCommand, "-w", "-t", "mangle"] + ShellWords.split(line))
            }
            if !(before.xtablesMangleExists[family] ?? false) { sys.dropEmptyMangleTable(family) }
        }
        let oldRoutes = routes(of: before.owned, ipv6: ipv6)
        sys.removeRoutes(planned.policyRoutes.filter { !oldRoutes.contains($0) })
        try? sys.installRoutes(oldRoutes)
        if ipv6 && !before.loopbackV6Present && sys.hasLoopbackV6() {
            _ = runner.run(LoopbackAddress.inboundPassthroughV6.delete)
        }
    }

    func routes(of owned: OwnedResources?, ipv6: Bool) -> [PolicyRoute] {
        guard let t = owned?.tproxyRouting else { return [] }
        var out = [PolicyRoute(family: .v4, mark: t.mark, table: t.table)]
        if ipv6 { out.append(PolicyRoute(family: .v6, mark: t.mark, table: t.table)) }
        return out
    }

    // MARK: - cleanup

    /// Removes everything apply added. What lies outside the table is taken from the table's own record
    /// of it; without a table, from the plan for these options. Succeeds when there is nothing to remove.
    public func cleanup(_ options: CaptureOptions) throws -> [String] {
        if runner.which("nft") == nil { throw CaptureError.missingTool("nft", package: "nftables", why: "capture rules are nft rules") }
        try requirePrivileges()
        let inspector = HostInspector(runner: runner)
        let ipv6 = inspector.ipv6Enabled()
        let sys = system
        let live = sys.read(ipv6: ipv6)
        var removed: [String] = []
        if live.tableExists {
            try sys.must(["nft", "delete", "table", NftTable.family, NftTable.name])
            removed.append("table \(NftTable.family) \(NftTable.name)")
        }
        for family in IPFamily.allCases {
            for line in live.xtablesRules[family] ?? [] {
                var words = ShellWords.split(line)
                words[0] = "-D"
                try sys.must([family.xtablesCommand, "-w", "-t", "mangle"] + words)
                removed.append("\(family.xtablesCommand) \(line)")
            }
        }
        if live.owned?.xtablesMangleV4Created == true { sys.dropEmptyMangleTable(.v4) }
        if live.owned?.xtablesMangleV6Created == true { sys.dropEmptyMangleTable(.v6) }
        let facts = HostFacts(ipv6: ipv6)
        let routes = live.tableExists ? routes(of: live.owned, ipv6: ipv6) : CapturePlanner(options: options, facts: facts).plan().policyRoutes
        for r in routes where sys.policyRuleInstalled(r) { removed.append(ShellWords.display(r.ruleAdd)) }
        sys.removeRoutes(routes)
        if live.owned?.loopbackV6Added == true && live.loopbackV6Present {
            try sys.must(LoopbackAddress.inboundPassthroughV6.delete)
            removed.append("::6/128 on lo")
        }
        return removed
    }

    // MARK: - verify

    /// nft's canonical JSON of the live table (counters, handles and the record set left out).
    func liveCanonical() -> String? {
        let r = runner.run(["nft", "-j", "list", "table", NftTable.family, NftTable.name])
        return r.succeeded ? NftJSON.canonical(r.stdout) : nil
    }

    func readRecord() -> CaptureRecord? {
        let r = runner.run(["nft", "list", "set", NftTable.family, NftTable.name, CaptureRecord.setName])
        guard r.succeeded, let start = r.stdout.range(of: "comment \""),
              let end = r.stdout[start.upperBound...].firstIndex(of: "\"") else { return nil }
        return CaptureRecord.decode(String(r.stdout[start.upperBound..<end]))
    }

    /// True when the live table is exactly what a plan with this fingerprint installed.
    func recordMatches(planHash: UInt64) -> Bool {
        guard let record = readRecord(), record.plan == planHash, let live = liveCanonical() else { return false }
        return CaptureRecord.fingerprint(live) == record.live
    }

    /// Differences between the live table (`nft -j list table`) and the plan's. The expected table is loaded
    /// into a throwaway network namespace and listed by the same nft, so both sides are in nft's canonical
    /// form; the readable diff uses `nft -s list table` text from both.
    func tableDifferences(_ plan: CapturePlan) throws -> [String] {
        let liveJSON = runner.run(["nft", "-j", "list", "table", NftTable.family, NftTable.name])
        guard liveJSON.succeeded else {
            return ["- table \(NftTable.family) \(NftTable.name) (missing: run 'interpose-init apply')"]
        }
        let scratch = "nft -f /dev/stdin && nft -j list table \(NftTable.family) \(NftTable.name) && echo '@@interpose@@' && nft -s list table \(NftTable.family) \(NftTable.name)"
        let expected = runner.run(["unshare", "--net", "--", "sh", "-c", scratch], input: plan.table.definition)
        guard expected.succeeded else {
            throw CaptureError("could not build the expected table in a scratch network namespace: \(expected.message)")
        }
        let parts = expected.stdout.components(separatedBy: "@@interpose@@\n")
        guard NftJSON.canonical(parts[0]) != NftJSON.canonical(liveJSON.stdout) else { return [] }
        let liveText = runner.run(["nft", "-s", "list", "table", NftTable.family, NftTable.name]).stdout
        let expectedText = parts.count > 1 ? parts[1] : ""
        let d = LineDiff.diff(expected: NftJSON.comparableLines(expectedText), actual: NftJSON.comparableLines(liveText))
        return d.isEmpty ? ["~ the table differs in a way its text does not show (compare 'nft -j list table inet interpose')"] : d
    }

    public struct VerifyResult: Sendable {
        public var differences: [String]
        public var matches: Bool { differences.isEmpty }
    }

    /// Compares the live table, the xtables queue rules, TPROXY routing and ::6 with what the options generate.
    public func verify(_ options: CaptureOptions) throws -> VerifyResult {
        if runner.which("nft") == nil { throw CaptureError.missingTool("nft", package: "nftables", why: "capture rules are nft rules") }
        try requirePrivileges()
        let facts = try facts(for: options)
        let sys = system
        let live = sys.read(ipv6: facts.ipv6)
        let owned = live.owned ?? freshOwned(options, facts: facts, live: live)
        let plan = CapturePlanner(options: options, facts: facts, owned: owned).plan()
        var diffs: [String] = []

        let planHash = CaptureRecord.fingerprint(plan.table.definition)
        if !recordMatches(planHash: planHash) {
            do {
                diffs += try tableDifferences(plan)
            } catch {
                // No scratch namespace here (unshare needs CAP_SYS_ADMIN): say what differs without a line diff.
                guard runner.run(["nft", "list", "table", NftTable.family, NftTable.name]).succeeded else {
                    throw error
                }
                if let record = readRecord() {
                    if record.plan != planHash { diffs.append("~ the options differ from those the table was applied with") }
                    else { diffs.append("~ the live table was changed since it was applied (rules added, removed or edited by hand)") }
                } else {
                    diffs.append("~ the table has no apply record and cannot be compared here: \(error)")
                }
            }
        }
        for rule in plan.xtablesRules where !(live.xtablesRules[rule.family] ?? []).contains(rule.listed) {
            diffs.append("- \(rule.family.xtablesCommand) -t mangle \(rule.listed)")
        }
        for family in IPFamily.allCases {
            for line in live.xtablesRules[family] ?? [] where !plan.xtablesRules.contains(where: { $0.family == family && $0.listed == line }) {
                diffs.append("+ \(family.xtablesCommand) -t mangle \(line)")
            }
        }
        for route in plan.policyRoutes where !sys.policyRuleInstalled(route) {
            diffs.append("- \(ShellWords.display(route.ruleAdd))")
        }
        if !plan.loopbackAddresses.isEmpty && !live.loopbackV6Present {
            diffs.append("- ::6/128 on lo")
        }
        return VerifyResult(differences: diffs)
    }
}
