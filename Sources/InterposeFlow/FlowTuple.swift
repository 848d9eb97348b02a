/// The addresses and ports of a queued packet, read from its IP and TCP/UDP headers.
public struct FlowTuple: Hashable, Sendable {
    public var transport: UInt8
    public var source: FlowAddress
    public var destination: FlowAddress
    public var sourcePort: UInt16
    public var destinationPort: UInt16

    public init(transport: UInt8 = 6, source: FlowAddress, destination: FlowAddress, sourcePort: UInt16, destinationPort: UInt16) {
        self.transport = transport
        self.source = source
        self.destination = destination
        self.sourcePort = sourcePort
        self.destinationPort = destinationPort
    }

    public static let tcp: UInt8 = 6
    public static let udp: UInt8 = 17

    /// Parses an IPv4 or IPv6 packet (IPv6 extension headers skipped). Checksums are never checked:
    /// locally generated packets arrive with them unfinished (GSO). Nil when it is not TCP or UDP,
    /// or is too short (a copy range below the headers).
    public static func parse(_ p: UnsafeRawBufferPointer) -> FlowTuple? {
        guard p.count >= 1 else { return nil }
        func u8(_ i: Int) -> UInt8 { p[i] }
        func u16(_ i: Int) -> UInt16 { UInt16(p[i]) << 8 | UInt16(p[i + 1]) }
        func u64(_ i: Int) -> UInt64 { (0..<8).reduce(UInt64(0)) { $0 << 8 | UInt64(p[i + $1]) } }
        var transport: UInt8
        var offset: Int
        let source: FlowAddress
        let destination: FlowAddress
        switch u8(0) >> 4 {
        case 4:
            guard p.count >= 20 else { return nil }
            offset = Int(u8(0) & 0x0F) * 4
            // A non-first fragment carries no ports.
            guard offset >= 20, u16(6) & 0x1FFF == 0 else { return nil }
            transport = u8(9)
            source = FlowAddress(v4: UInt32(u16(12)) << 16 | UInt32(u16(14)))
            destination = FlowAddress(v4: UInt32(u16(16)) << 16 | UInt32(u16(18)))
        case 6:
            guard p.count >= 40 else { return nil }
            transport = u8(6)
            offset = 40
            source = FlowAddress(v6High: u64(8), v6Low: u64(16))
            destination = FlowAddress(v6High: u64(24), v6Low: u64(32))
            // Hop-by-hop, routing, destination options: skip; a fragment header: only the first has ports.
            var hops = 0
            while [0, 43, 60, 44].contains(transport), hops < 8 {
                guard p.count >= offset + 8 else { return nil }
                if transport == 44 {
                    guard u16(offset + 2) & 0xFFF8 == 0 else { return nil }
                    transport = u8(offset)
                    offset += 8
                } else {
                    let next = u8(offset)
                    offset += (Int(u8(offset + 1)) + 1) * 8
                    transport = next
                }
                hops += 1
            }
        default:
            return nil
        }
        guard transport == tcp || transport == udp, p.count >= offset + 4 else { return nil }
        return FlowTuple(transport: transport, source: source, destination: destination, sourcePort: u16(offset), destinationPort: u16(offset + 2))
    }
}
