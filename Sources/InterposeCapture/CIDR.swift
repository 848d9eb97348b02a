/// An IPv4 or IPv6 network, stored masked to its prefix so `10.1.2.3/8` and `10.0.0.0/8` are the same set element.
public struct CIDR: Hashable, Sendable, Comparable, CustomStringConvertible {
    public enum Family: Sendable, Hashable { case v4, v6 }

    public let family: Family
    /// Network address bytes (4 or 16), host bits cleared.
    public let bytes: [UInt8]
    public let prefixLength: Int

    public var isHost: Bool { prefixLength == bytes.count * 8 }

    /// nft element syntax: a host address alone, a network with its prefix.
    public var description: String {
        let addr = family == .v4 ? IPAddressText.formatV4(bytes) : IPAddressText.formatV6(bytes)
        return isHost ? addr : "\(addr)/\(prefixLength)"
    }

    public static func < (a: CIDR, b: CIDR) -> Bool {
        if a.bytes != b.bytes { return a.bytes.lexicographicallyPrecedes(b.bytes) }
        return a.prefixLength < b.prefixLength
    }

    public init(family: Family, bytes: [UInt8], prefixLength: Int) {
        self.family = family
        self.prefixLength = prefixLength
        var masked = bytes
        for i in 0..<masked.count {
            let bitsInByte = max(0, min(8, prefixLength - i * 8))
            masked[i] &= bitsInByte == 0 ? 0 : UInt8(truncatingIfNeeded: 0xFF << (8 - bitsInByte))
        }
        self.bytes = masked
    }

    /// Whether an address (4 or 16 bytes, as `IPAddressText.parse` gives them) lies in this network.
    public func contains(_ address: [UInt8]) -> Bool {
        address.count == bytes.count && CIDR(family: family, bytes: address, prefixLength: prefixLength).bytes == bytes
    }

    /// Parses `a.b.c.d`, `a.b.c.d/n`, an IPv6 address, or `addr/n`. Returns a reason on failure.
    public static func parse(_ text: String) -> Result<CIDR, CIDRError> {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count <= 2, let addrText = parts.first, !addrText.isEmpty else {
            return .failure(.malformed(text))
        }
        let family: Family
        let bytes: [UInt8]
        if let v4 = IPAddressText.parseV4(String(addrText)) {
            family = .v4; bytes = v4
        } else if let v6 = IPAddressText.parseV6(String(addrText)) {
            family = .v6; bytes = v6
        } else {
            return .failure(.badAddress(text))
        }
        let maxLength = bytes.count * 8
        var length = maxLength
        if parts.count == 2 {
            let p = parts[1]
            guard !p.isEmpty, p.count <= 3, p.allSatisfy(\.isASCIIDigit), let v = Int(p), v <= maxLength else {
                return .failure(.badPrefix(text, max: maxLength))
            }
            length = v
        }
        return .success(CIDR(family: family, bytes: bytes, prefixLength: length))
    }
}

public enum CIDRError: Error, Equatable, Sendable, CustomStringConvertible {
    case malformed(String)
    case badAddress(String)
    case badPrefix(String, max: Int)

    public var description: String {
        switch self {
        case .malformed(let t): return "'\(t)' is not a CIDR"
        case .badAddress(let t): return "'\(t)' is not a CIDR: the address is neither IPv4 nor IPv6"
        case .badPrefix(let t, let max): return "'\(t)' is not a CIDR: the prefix length must be 0-\(max)"
        }
    }
}

/// Text forms of addresses, written by hand so this module needs no libc (it stays pure and portable).
public enum IPAddressText {
    /// 4 bytes for IPv4, 16 for IPv6 (a `%zone` suffix ignored); nil when it is neither.
    public static func parse(_ s: String) -> [UInt8]? {
        if let v4 = parseV4(s) { return v4 }
        let unzoned = s.firstIndex(of: "%").map { String(s[..<$0]) } ?? s
        return parseV6(unzoned)
    }

    public static func parseV4(_ s: String) -> [UInt8]? {
        let parts = s.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 4 else { return nil }
        var out: [UInt8] = []
        for p in parts {
            guard !p.isEmpty, p.count <= 3, p.allSatisfy(\.isASCIIDigit), let v = Int(p), v <= 255 else { return nil }
            out.append(UInt8(v))
        }
        return out
    }

    public static func parseV6(_ s: String) -> [UInt8]? {
        guard s.contains(":"), s.count <= 45 else { return nil }
        var text = Substring(s)
        var tailV4: [UInt8] = []
        // An embedded IPv4 tail (::ffff:1.2.3.4) fills the last 32 bits.
        if let lastColon = text.lastIndex(of: ":"), text[lastColon...].contains(".") {
            guard let v4 = parseV4(String(text[text.index(after: lastColon)...])) else { return nil }
            tailV4 = v4
            text = text[...lastColon]
            if text.hasSuffix(":") && !text.hasSuffix("::") { text = text.dropLast() }
        }
        let halves = text.components(separatedByDoubleColon: ())
        guard halves.count <= 2 else { return nil }
        func groups(_ part: Substring) -> [UInt16]? {
            if part.isEmpty { return [] }
            var out: [UInt16] = []
            for g in part.split(separator: ":", omittingEmptySubsequences: false) {
                guard !g.isEmpty, g.count <= 4, let v = UInt16(g, radix: 16) else { return nil }
                out.append(v)
            }
            return out
        }
        guard let head = groups(halves[0]) else { return nil }
        let tail = halves.count == 2 ? groups(halves[1]) : []
        guard let tail else { return nil }
        let needed = 8 - tailV4.count / 2
        var all: [UInt16]
        if halves.count == 2 {
            guard head.count + tail.count < needed else { return nil }
            all = head + Array(repeating: 0, count: needed - head.count - tail.count) + tail
        } else {
            guard head.count == needed else { return nil }
            all = head
        }
        var bytes: [UInt8] = []
        for g in all { bytes.append(UInt8(g >> 8)); bytes.append(UInt8(g & 0xFF)) }
        return bytes + tailV4
    }

    public static func formatV4(_ b: [UInt8]) -> String { b.map(String.init).joined(separator: ".") }

    /// RFC 5952 form: lower case, leading zeros dropped, the longest run of two or more zero groups as `::`.
    public static func formatV6(_ b: [UInt8]) -> String {
        let groups = (0..<8).map { UInt16(b[2 * $0]) << 8 | UInt16(b[2 * $0 + 1]) }
        var bestStart = -1, bestLen = 0, i = 0
        while i < 8 {
            if groups[i] == 0 {
                var j = i
                while j < 8 && groups[j] == 0 { j += 1 }
                if j - i > bestLen && j - i >= 2 { bestStart = i; bestLen = j - i }
                i = j
            } else { i += 1 }
        }
        let hex = groups.map { String($0, radix: 16) }
        if bestStart < 0 { return hex.joined(separator: ":") }
        let head = hex[0..<bestStart].joined(separator: ":")
        let tail = hex[(bestStart + bestLen)...].joined(separator: ":")
        return head + "::" + tail
    }
}

extension Substring {
    /// Splits on the first "::" only; a second "::" makes the address invalid and yields three parts.
    fileprivate func components(separatedByDoubleColon _: Void) -> [Substring] {
        var parts: [Substring] = []
        var rest = self[...]
        while let r = rest.range(of: "::") {
            parts.append(rest[..<r.lowerBound])
            rest = rest[r.upperBound...]
        }
        parts.append(rest)
        return parts
    }

    fileprivate func range(of needle: String) -> Range<Index>? {
        var i = startIndex
        while i < endIndex {
            if self[i...].hasPrefix(needle) { return i..<index(i, offsetBy: needle.count) }
            i = index(after: i)
        }
        return nil
    }
}
