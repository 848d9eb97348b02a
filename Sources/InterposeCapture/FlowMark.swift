/// The packet-mark convention shared by the generated rules and the flow engine's NFQUEUE verdicts.
///
/// Three bits (20-22) of the packet mark carry the verdict on a new flow. They sit clear of the TPROXY
/// mark (1337 = 0x539) and of the low bits other software commonly uses. The first SYN of a captured flow
/// is tagged `queued` and handed to NFQUEUE; the engine answers with the same packet and one of the verdict
/// values; the nat chains read them, and the chosen value is saved to the conntrack mark.
public enum FlowMark {
    public static let mask: UInt32 = 0x0070_0000
    /// Set by the gate chain before the packet is queued. Still present after a fail-open accept (no
    /// engine answered): the nat chains then let the flow go straight to its destination.
    public static let queued: UInt32 = 0x0010_0000
    /// Verdict: send the flow to the proxy (the same as no verdict).
    public static let proxy: UInt32 = 0x0020_0000
    /// Verdict: refuse the flow with a TCP reset (a filter chain rejects it).
    public static let denyReset: UInt32 = 0x0030_0000
    /// Verdict: let the flow go straight to its destination, past the proxy.
    public static let bypass: UInt32 = 0x0040_0000

    /// The mark an engine sets: other bits of the packet's mark kept, the verdict field replaced.
    public static func applying(_ verdict: UInt32, to mark: UInt32) -> UInt32 {
        (mark & ~mask) | (verdict & mask)
    }

    /// The verdict field of a mark.
    public static func verdict(of mark: UInt32) -> UInt32 { mark & mask }

    /// nft and iptables spell marks in 8-digit hex.
    public static func hex(_ v: UInt32) -> String {
        let digits = String(v, radix: 16)
        return "0x" + String(repeating: "0", count: max(0, 8 - digits.count)) + digits
    }
}
