/// A TCP/UDP port or an inclusive range of ports, as written in a capture option ("8080" or "8000-8010").
public struct PortRange: Hashable, Sendable, Comparable, CustomStringConvertible {
    public let lower: UInt16
    public let upper: UInt16

    public init(_ port: UInt16) { lower = port; upper = port }

    public init?(_ lower: UInt16, _ upper: UInt16) {
        guard lower <= upper else { return nil }
        self.lower = lower
        self.upper = upper
    }

    public func contains(_ port: UInt16) -> Bool { port >= lower && port <= upper }

    /// nft element syntax: `8080` or `8000-8010`.
    public var description: String { lower == upper ? "\(lower)" : "\(lower)-\(upper)" }

    public static func < (a: PortRange, b: PortRange) -> Bool {
        (a.lower, a.upper) < (b.lower, b.upper)
    }

    /// Parses one list item. Port 0 is refused: it never names a real destination.
    public static func parse(_ text: String) -> PortRange? {
        let parts = text.split(separator: "-", omittingEmptySubsequences: false)
        func port(_ s: Substring) -> UInt16? {
            guard !s.isEmpty, s.allSatisfy(\.isASCIIDigit), s.count <= 5, let v = Int(s), v >= 1, v <= 65535 else { return nil }
            return UInt16(v)
        }
        switch parts.count {
        case 1: return port(parts[0]).map { PortRange($0) }
        case 2:
            guard let lo = port(parts[0]), let hi = port(parts[1]) else { return nil }
            return PortRange(lo, hi)
        default: return nil
        }
    }
}

/// Sorted, de-duplicated port ranges, merged where they touch, so equal inputs render equal sets.
public func normalizePorts(_ ranges: [PortRange]) -> [PortRange] {
    var merged: [PortRange] = []
    for r in ranges.sorted() {
        if let last = merged.last, Int(r.lower) <= Int(last.upper) + 1 {
            merged[merged.count - 1] = PortRange(last.lower, max(last.upper, r.upper))!
        } else {
            merged.append(r)
        }
    }
    return merged
}

/// Which ports a direction captures: Istio's `*`, an explicit list, or nothing.
public enum PortSelection: Equatable, Sendable {
    case all
    case only([PortRange])
    case none
}

extension Character {
    var isASCIIDigit: Bool { self >= "0" && self <= "9" }
}
