/// The text `render` prints: a valid `nft -f` file whose leading comments list the notes and the
/// commands that run beside the nft transaction (xtables queue rule, TPROXY routing, loopback address).
public enum PlanText {
    public static func render(_ plan: CapturePlan, options: CaptureOptions, facts: HostFacts) -> String {
        var out = "# interpose-init render: mode=\(options.mode.rawValue) ipv6=\(facts.ipv6 ? "yes" : "no")"
        if let q = options.queue {
            out += " queue=\(q) (\(facts.nativeNftQueue ? "native nft queue" : "xtables NFQUEUE fallback"), fail-\(options.queueBypass ? "open" : "closed"))"
        }
        out += "\n"
        for n in plan.notes { out += "# note: \(n)\n" }
        let commands = sideCommands(plan)
        if !commands.isEmpty {
            out += "# commands run after the nft transaction:\n"
            for c in commands { out += "#   \(ShellWords.display(c))\n" }
        }
        out += plan.table.script
        return out
    }

    /// The non-nft commands `apply` runs, in order.
    public static func sideCommands(_ plan: CapturePlan) -> [[String]] {
        var out: [[String]] = []
        for r in plan.xtablesRules { out.append(r.appendCommand) }
        for r in plan.policyRoutes { out.append(r.ruleAdd); out.append(r.routeReplace) }
        for a in plan.loopbackAddresses { out.append(a.add) }
        return out
    }
}
