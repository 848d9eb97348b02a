import InterposeCapture

/// A binary trie of network prefixes for one address family: `contains` walks at most 32 or 128
/// bits, whatever the number of prefixes, and stops at the first prefix that covers the address.
public struct PrefixTrie: Sendable {
    private struct Node: Sendable {
        var zero: Int32 = -1
        var one: Int32 = -1
        var terminal = false
    }
    private var nodes = [Node()]
    public private(set) var count = 0

    public init() {}

    public init(_ prefixes: [CIDR]) {
        for p in prefixes { insert(p) }
    }

    public var isEmpty: Bool { count == 0 }

    public mutating func insert(_ prefix: CIDR) {
        guard let address = FlowAddress(bytes: prefix.bytes) else { return }
        var index = 0
        for i in 0..<prefix.prefixLength {
            if nodes[index].terminal { return } // a shorter prefix already covers it
            let bit = address.bit(i)
            var next = Int(bit ? nodes[index].one : nodes[index].zero)
            if next < 0 {
                nodes.append(Node())
                next = nodes.count - 1
                if bit { nodes[index].one = Int32(next) } else { nodes[index].zero = Int32(next) }
            }
            index = next
        }
        nodes[index].terminal = true
        count += 1
    }

    public func contains(_ address: FlowAddress) -> Bool {
        var index = 0
        for i in 0..<address.bitCount {
            if nodes[index].terminal { return true }
            let next = address.bit(i) ? nodes[index].one : nodes[index].zero
            if next < 0 { return false }
            index = Int(next)
        }
        return nodes[index].terminal
    }
}

/// A set of prefixes of both families; empty means "any address".
public struct AddressMatcher: Sendable {
    let v4: PrefixTrie
    let v6: PrefixTrie
    public let matchesAny: Bool

    public init(_ prefixes: [CIDR]) {
        v4 = PrefixTrie(prefixes.filter { $0.family == .v4 })
        v6 = PrefixTrie(prefixes.filter { $0.family == .v6 })
        matchesAny = prefixes.isEmpty
    }

    @inline(__always) public func matches(_ a: FlowAddress) -> Bool {
        matchesAny || (a.isV6 ? v6.contains(a) : v4.contains(a))
    }
}
