import InterposeCapture

/// An IPv4 or IPv6 address as two integers: cheap to hash and compare on the verdict path.
public struct FlowAddress: Hashable, Sendable, CustomStringConvertible {
    public let isV6: Bool
    /// The address's bits, most significant first; IPv4 uses the low 32 bits of `low`.
    public let high: UInt64
    public let low: UInt64

    public init(v4: UInt32) { isV6 = false; high = 0; low = UInt64(v4) }
    public init(v6High: UInt64, v6Low: UInt64) { isV6 = true; high = v6High; low = v6Low }

    /// From 4 or 16 network-order bytes.
    public init?(bytes: some Collection<UInt8>) {
        switch bytes.count {
        case 4: self.init(v4: bytes.reduce(UInt32(0)) { $0 << 8 | UInt32($1) })
        case 16:
            let hi = bytes.prefix(8).reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
            let lo = bytes.dropFirst(8).reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
            self.init(v6High: hi, v6Low: lo)
        default: return nil
        }
    }

    public init?(_ text: String) {
        guard let b = IPAddressText.parse(text) else { return nil }
        self.init(bytes: b)
    }

    public var bitCount: Int { isV6 ? 128 : 32 }

    /// Bit `i` counted from the most significant (0).
    @inline(__always) public func bit(_ i: Int) -> Bool {
        if !isV6 { return (low >> (31 - i)) & 1 == 1 }
        return i < 64 ? (high >> (63 - i)) & 1 == 1 : (low >> (127 - i)) & 1 == 1
    }

    public var bytes: [UInt8] {
        if !isV6 { return (0..<4).map { UInt8(truncatingIfNeeded: low >> (24 - 8 * $0)) } }
        return (0..<8).map { UInt8(truncatingIfNeeded: high >> (56 - 8 * $0)) } + (0..<8).map { UInt8(truncatingIfNeeded: low >> (56 - 8 * $0)) }
    }

    public var description: String { isV6 ? IPAddressText.formatV6(bytes) : IPAddressText.formatV4(bytes) }
}
