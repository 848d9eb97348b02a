// Finding the first matching rule among many without trying them all: each rule is filed under a condition
// it cannot match without (an exact `when` value, or the paths of its operations), so a request only tries
// the rules filed under its own values plus the rules that could not be filed. The rules tried are a superset
// of the rules that match, tried in order, so the first match is the one a linear scan finds.

/// A byte trie of path prefixes and exact paths, each leading to rule ordinals.
struct PathTrie: Sendable {
    struct Node: Sendable {
        var edgeStart: Int32 = 0
        var edgeCount: Int32 = 0
        var prefixStart: Int32 = 0
        var prefixCount: Int32 = 0
        var exactStart: Int32 = 0
        var exactCount: Int32 = 0
    }
    let nodes: Table<Node>
    let edgeBytes: Table<UInt8>
    let edgeTargets: Table<Int32>
    let ordinals: Table<Int32>

    /// Builds from (bytes, isPrefix, ordinal) entries.
    init(_ entries: [(bytes: [UInt8], prefix: Bool, ordinal: Int32)]) {
        final class Builder {
            var children: [UInt8: Builder] = [:]
            var prefixes: [Int32] = []
            var exacts: [Int32] = []
        }
        let root = Builder()
        for e in entries {
            var node = root
            for b in e.bytes {
                if let next = node.children[b] { node = next } else {
                    let next = Builder()
                    node.children[b] = next
                    node = next
                }
            }
            if e.prefix { node.prefixes.append(e.ordinal) } else { node.exacts.append(e.ordinal) }
        }
        // Breadth-first flattening: a node's edges are contiguous and sorted by byte.
        var nodes: [Node] = []
        var edgeBytes: [UInt8] = []
        var edgeTargets: [Int32] = []
        var ordinals: [Int32] = []
        var queue: [Builder] = [root]
        var head = 0
        nodes.append(Node())
        while head < queue.count {
            let b = queue[head]
            var n = Node()
            n.prefixStart = Int32(ordinals.count)
            ordinals += b.prefixes
            n.prefixCount = Int32(b.prefixes.count)
            n.exactStart = Int32(ordinals.count)
            ordinals += b.exacts
            n.exactCount = Int32(b.exacts.count)
            n.edgeStart = Int32(edgeBytes.count)
            for (byte, child) in b.children.sorted(by: { $0.key < $1.key }) {
                edgeBytes.append(byte)
                queue.append(child)
                nodes.append(Node())
                edgeTargets.append(Int32(queue.count - 1))
            }
            n.edgeCount = Int32(edgeBytes.count) - n.edgeStart
            nodes[head] = n
            head += 1
        }
        self.nodes = Table(nodes)
        self.edgeBytes = Table(edgeBytes)
        self.edgeTargets = Table(edgeTargets)
        self.ordinals = Table(ordinals)
    }

    /// Calls `found` with the ordinal of every entry that is a prefix of the path, or equal to it.
    @inline(__always)
    func collect(_ path: UnsafeBufferPointer<UInt8>, _ found: (Int32) -> Void) {
        var node = 0
        var i = 0
        while true {
            let n = nodes[node]
            var k = Int(n.prefixStart)
            while k < Int(n.prefixStart + n.prefixCount) { found(ordinals[k]); k += 1 }
            if i == path.count {
                k = Int(n.exactStart)
                while k < Int(n.exactStart + n.exactCount) { found(ordinals[k]); k += 1 }
                return
            }
            let byte = path[i]
            var e = Int(n.edgeStart)
            var next = -1
            while e < Int(n.edgeStart + n.edgeCount) {
                let eb = edgeBytes[e]
                if eb == byte { next = Int(edgeTargets[e]); break }
                if eb > byte { break }
                e += 1
            }
            if next < 0 { return }
            node = next
            i += 1
        }
    }
}

/// Files rules (program rule indices, numbered by their position here: ordinals) under conditions they
/// cannot match without, and gives the candidates for a request as a bit set of ordinals.
struct CandidateIndex: Sendable {
    /// Rules that could not be filed: always candidates.
    let always: Table<UInt64>
    let words: Int
    /// Exact values of one attribute -> ordinals.
    let keyed: [(attr: AttrRef, rules: [String: [Int32]])]
    let paths: PathTrie?

    /// Lists of this size or more are indexed; below, trying every rule is as quick.
    static let threshold = 8

    /// Nil when the list is short or no rule could be filed.
    init?(rules: [Int], _ b: ProgramBuilder) {
        guard rules.count >= Self.threshold else { return nil }
        let words = (rules.count + 63) / 64
        var always = [UInt64](repeating: 0, count: words)
        var keyed: [(attr: AttrRef, rules: [String: [Int32]])] = []
        var paths: [(bytes: [UInt8], prefix: Bool, ordinal: Int32)] = []
        var filed = 0
        func patterns(_ set: ValueSet) -> [Pattern] {
            set.kind == .patterns ? Array(b.patterns[Int(set.start)..<Int(set.start + set.count)]) : []
        }
        func bytes(_ p: Pattern) -> [UInt8] { Array(b.bytes[Int(p.start)..<Int(p.start + p.count)]) }
        for (ordinal, index) in rules.enumerated() {
            let rule = b.rules[index]
            // 1. A `when` condition on a text attribute whose values are all exact.
            let when = b.conds[Int(rule.whenStart)..<Int(rule.whenStart + rule.whenCount)]
            if let c = when.first(where: { c in
                let ps = patterns(c.values)
                return !ps.isEmpty && ps.allSatisfy { $0.kind == .exact && !$0.ignoreCase } && !c.attr.isAddress && c.attr.kind != .auth
            }) {
                var slot = keyed.firstIndex { $0.attr == c.attr }
                if slot == nil { keyed.append((c.attr, [:])); slot = keyed.count - 1 }
                for p in patterns(c.values) {
                    let value = String(decoding: bytes(p), as: UTF8.self)
                    if keyed[slot!].rules[value]?.last != Int32(ordinal) { keyed[slot!].rules[value, default: []].append(Int32(ordinal)) }
                }
                filed += 1
                continue
            }
            // 2. Every operation has paths, all exact or prefixes: one of them must match.
            var pathEntries: [(bytes: [UInt8], prefix: Bool, ordinal: Int32)] = []
            var allHavePaths = rule.toCount > 0
            for g in b.groups[Int(rule.toStart)..<Int(rule.toStart + rule.toCount)] {
                let conds = b.conds[Int(g.start)..<Int(g.start + g.count)]
                guard let c = conds.first(where: { $0.attr.kind == .path && $0.values.kind == .patterns }),
                      patterns(c.values).allSatisfy({ $0.kind == .exact || $0.kind == .prefix }) else { allHavePaths = false; break }
                for p in patterns(c.values) { pathEntries.append((bytes(p), p.kind == .prefix, Int32(ordinal))) }
            }
            if allHavePaths && !pathEntries.isEmpty {
                paths += pathEntries
                filed += 1
                continue
            }
            always[ordinal / 64] |= 1 << UInt64(ordinal % 64)
        }
        if filed == 0 { return nil }
        self.always = Table(always)
        self.words = words
        self.keyed = keyed
        self.paths = paths.isEmpty ? nil : PathTrie(paths)
    }

    /// Fills `bits` (`words` long) with the candidates for an HTTP request.
    @inline(__always)
    func candidates(_ bits: UnsafeMutableBufferPointer<UInt64>, _ a: some AttributeSource, _ cache: inout AttributeCache) {
        for w in 0..<words { bits[w] = always[w] }
        for k in 0..<keyed.count {
            guard let value = cache.string(keyed[k].attr, a) else { continue }
            if let rules = keyed[k].rules[value] {
                for o in rules { bits[Int(o) / 64] |= 1 << UInt64(o % 64) }
            }
            // A repeated header (or list value) is filed under each element, as the matcher reads it.
            if keyed[k].attr.kind == .header {
                _ = HeaderElements.any(of: value) { element in
                    for o in keyed[k].rules[element] ?? [] { bits[Int(o) / 64] |= 1 << UInt64(o % 64) }
                    return false
                }
            }
        }
        if let trie = paths, var path = cache.string(AttrRef(kind: .path, slot: -1), a) {
            path.withUTF8 { p in trie.collect(p) { o in bits[Int(o) / 64] |= 1 << UInt64(o % 64) } }
        }
    }
}

/// The rules of every policy of one action, in evaluation order (policy by namespace/name, then rule).
final class RuleGroup: Sendable {
    struct Entry: Sendable {
        var policy: Int32
        var position: Int32
        var rule: Int32
    }
    let policies: [AuthzPolicy]
    let entries: Table<Entry>
    let tcp: TCPFieldHandling
    let index: CandidateIndex?

    var isEmpty: Bool { policies.isEmpty }
    var count: Int { policies.count }

    init(_ policies: [AuthzPolicy], tcp: TCPFieldHandling, builder: ProgramBuilder) {
        self.policies = policies
        self.tcp = tcp
        var entries: [Entry] = []
        for (p, policy) in policies.enumerated() {
            for (position, rule) in policy.rules.enumerated() {
                entries.append(Entry(policy: Int32(p), position: Int32(position), rule: Int32(rule)))
            }
        }
        self.entries = Table(entries)
        index = CandidateIndex(rules: entries.map { Int($0.rule) }, builder)
    }

    /// The first rule that matches, as (policy, rule position); nil when none does. TCP connections try every
    /// rule: DENY rules ignore their HTTP fields there, so what the index filed them under does not hold.
    func firstMatch(_ program: MatchProgram, _ a: some AttributeSource, _ cache: inout AttributeCache) -> (policy: AuthzPolicy, position: Int)? {
        guard let index, cache.isHTTP else {
            var o = 0
            while o < entries.count {
                let e = entries[o]
                if program.matches(rule: Int(e.rule), a, &cache, tcp: tcp) { return (policies[Int(e.policy)], Int(e.position)) }
                o += 1
            }
            return nil
        }
        return withUnsafeTemporaryAllocation(of: UInt64.self, capacity: index.words) { bits -> (policy: AuthzPolicy, position: Int)? in
            index.candidates(bits, a, &cache)
            for w in 0..<index.words {
                var word = bits[w]
                while word != 0 {
                    let bit = word.trailingZeroBitCount
                    word &= word - 1
                    let e = entries[w * 64 + bit]
                    if program.matches(rule: Int(e.rule), a, &cache, tcp: tcp) { return (policies[Int(e.policy)], Int(e.position)) }
                }
            }
            return nil
        }
    }
}
