/// What `apply` created outside its own nft table, recorded in the table's comment so that `cleanup`
/// removes exactly that, even when it runs with other options than `apply` did (nft keeps at most
/// 128 bytes of comment, so the encoding is terse).
public struct OwnedResources: Equatable, Sendable {
    /// `::6/128` was added to `lo` by us (it did not exist before).
    public var loopbackV6Added = false
    /// iptables-nft's `ip mangle` / `ip6 mangle` tables were created by us for the queue rules.
    public var xtablesMangleV4Created = false
    public var xtablesMangleV6Created = false
    /// The TPROXY policy-routing mark and table we installed.
    public var tproxyRouting: TProxyRouting?

    public init() {}

    public struct TProxyRouting: Equatable, Sendable {
        public var mark: UInt32
        public var table: UInt32
        public init(mark: UInt32, table: UInt32) { self.mark = mark; self.table = table }
    }

    static let prefix = "interpose-init v1"

    public var encoded: String {
        var parts = [Self.prefix]
        if loopbackV6Added { parts.append("lo6=1") }
        if xtablesMangleV4Created { parts.append("xt4=1") }
        if xtablesMangleV6Created { parts.append("xt6=1") }
        if let t = tproxyRouting { parts.append("tproxy=\(t.mark):\(t.table)") }
        return parts.joined(separator: " ")
    }

    /// Reads a comment written by `encoded`; nil if it is not ours.
    public static func decode(_ comment: String) -> OwnedResources? {
        guard comment.hasPrefix(prefix) else { return nil }
        var r = OwnedResources()
        for field in comment.dropFirst(prefix.count).split(separator: " ") {
            let kv = field.split(separator: "=", maxSplits: 1)
            guard kv.count == 2 else { continue }
            switch kv[0] {
            case "lo6": r.loopbackV6Added = kv[1] == "1"
            case "xt4": r.xtablesMangleV4Created = kv[1] == "1"
            case "xt6": r.xtablesMangleV6Created = kv[1] == "1"
            case "tproxy":
                let mt = kv[1].split(separator: ":")
                if mt.count == 2, let m = UInt32(mt[0]), let t = UInt32(mt[1]) {
                    r.tproxyRouting = TProxyRouting(mark: m, table: t)
                }
            default: continue
            }
        }
        return r
    }
}

extension OwnedResources {
    /// What an apply of `plan` records as ours, given what existed before it: a thing counts as ours if we
    /// create it now or an earlier apply recorded creating it.
    public static func expected(for plan: CapturePlan, previous: OwnedResources?, loopbackV6Present: Bool,
                                xtablesMangleExists: [IPFamily: Bool]) -> OwnedResources {
        let prev = previous ?? OwnedResources()
        var owned = OwnedResources()
        if !plan.loopbackAddresses.isEmpty {
            owned.loopbackV6Added = prev.loopbackV6Added || !loopbackV6Present
        }
        let families = Set(plan.xtablesRules.map(\.family))
        owned.xtablesMangleV4Created = families.contains(.v4) && (prev.xtablesMangleV4Created || !(xtablesMangleExists[.v4] ?? false))
        owned.xtablesMangleV6Created = families.contains(.v6) && (prev.xtablesMangleV6Created || !(xtablesMangleExists[.v6] ?? false))
        if let first = plan.policyRoutes.first { owned.tproxyRouting = TProxyRouting(mark: first.mark, table: first.table) }
        return owned
    }
}
