import Foundation
import InterposeCapture
import InterposeKernel

/// What capture currently has in place in this network namespace, read from nft, iptables-nft and ip.
struct LiveCapture {
    /// `nft list table inet interpose` (nil when the table does not exist).
    var tableText: String?
    /// What the table's comment says apply created outside the table.
    var owned: OwnedResources?
    /// Our xtables rules (those with our comment), as `iptables-nft -S` lists them, per family.
    var xtablesRules: [IPFamily: [String]]
    var loopbackV6Present: Bool
    var xtablesMangleExists: [IPFamily: Bool]

    var tableExists: Bool { tableText != nil }
}

/// Reads and changes the pieces of a capture through the command runner.
struct CaptureSystem {
    let runner: CommandRunner

    static let chainsWithQueueRules = ["OUTPUT", "PREROUTING"]

    func read(ipv6: Bool) -> LiveCapture {
        let table = runner.run(["nft", "list", "table", NftTable.family, NftTable.name])
        let text = table.succeeded ? table.stdout : nil
        let owned = text.flatMap(Self.tableComment).flatMap(OwnedResources.decode)
        var xt: [IPFamily: [String]] = [:]
        var mangle: [IPFamily: Bool] = [:]
        for family in IPFamily.allCases {
            let exists = runner.which(family.xtablesCommand) != nil
                && runner.run(["nft", "list", "table", family.nftFamily, "mangle"]).succeeded
            mangle[family] = exists
            xt[family] = exists ? ourXtablesRules(family) : []
        }
        return LiveCapture(tableText: text, owned: owned, xtablesRules: xt, loopbackV6Present: ipv6 && hasLoopbackV6(), xtablesMangleExists: mangle)
    }

    static func tableComment(_ text: String) -> String? {
        for line in text.split(separator: "\n") {
            let t = line.trimmingCharacters(in: .whitespaces)
            if t.hasPrefix("comment \""), t.hasSuffix("\"") { return String(t.dropFirst(9).dropLast()) }
            if t.hasPrefix("chain ") || t.hasPrefix("set ") { break }
        }
        return nil
    }

    func ourXtablesRules(_ family: IPFamily) -> [String] {
        var out: [String] = []
        for chain in Self.chainsWithQueueRules {
            let r = runner.run([family.xtablesCommand, "-w", "-t", "mangle", "-S", chain])
            guard r.succeeded else { continue }
            out += r.stdout.split(separator: "\n").map(String.init).filter { $0.contains(XtablesRule.comment) }
        }
        return out
    }

    func hasLoopbackV6() -> Bool {
        let r = runner.run(["ip", "-6", "addr", "show", "dev", "lo"])
        return r.stdout.split(separator: "\n").contains { $0.trimmingCharacters(in: .whitespaces).hasPrefix("inet6 ::6/128") }
    }

    func policyRuleInstalled(_ route: PolicyRoute) -> Bool {
        let r = runner.run(route.ruleList)
        return r.succeeded && !r.stdout.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty
    }

    /// Runs a command, turning a failure into a CaptureError that shows the command and its output.
    func must(_ argv: [String], input: String? = nil) throws {
        let r = runner.run(argv, input: input)
        guard r.succeeded else {
            throw CaptureError("\(ShellWords.display(argv)) failed: \(r.message)")
        }
    }

    // MARK: - reconciling the pieces outside the nft table

    /// Makes our xtables rules exactly `wanted` (deleting stale ones first).
    func reconcileXtables(wanted: [XtablesRule], live: [IPFamily: [String]]) throws {
        for family in IPFamily.allCases {
            let want = wanted.filter { $0.family == family }
            let have = live[family] ?? []
            for line in have where !want.contains(where: { $0.listed == line }) {
                var words = ShellWords.split(line)
                guard words.first == "-A" else { continue }
                words[0] = "-D"
                try must([family.xtablesCommand, "-w", "-t", "mangle"] + words)
            }
            for rule in want where !have.contains(rule.listed) {
                try must(rule.appendCommand)
            }
        }
    }

    /// Deletes an iptables-nft mangle table we created, once none of its chains holds a rule.
    func dropEmptyMangleTable(_ family: IPFamily) {
        let r = runner.run(["nft", "list", "table", family.nftFamily, "mangle"])
        guard r.succeeded else { return }
        let hasRules = r.stdout.split(separator: "\n").contains { line in
            let t = line.trimmingCharacters(in: .whitespaces)
            return !t.isEmpty && !t.hasPrefix("table") && !t.hasPrefix("chain") && !t.hasPrefix("type") && t != "}" && !t.hasPrefix("#")
        }
        if !hasRules { _ = runner.run(["nft", "delete", "table", family.nftFamily, "mangle"]) }
    }

    func installRoutes(_ routes: [PolicyRoute]) throws {
        for r in routes {
            if !policyRuleInstalled(r) { try must(r.ruleAdd) }
            try must(r.routeReplace)
        }
    }

    func removeRoutes(_ routes: [PolicyRoute]) {
        for r in routes {
            // A rule added twice by hand would need two deletes; stop at the first failure.
            for _ in 0..<8 where policyRuleInstalled(r) {
                if !runner.run(r.ruleDelete).succeeded { break }
            }
            _ = runner.run(r.routeFlush)
        }
    }
}
