/// Fingerprints that `apply` stores beside its table, so `verify` and a repeated `apply` can tell,
/// without building the expected table again, whether the live table is exactly what these options
/// produced: `plan` hashes the generated definition, `live` hashes nft's own canonical JSON listing
/// of the table right after it was installed. They live in an element comment of a one-element set
/// (`capture_record`) because nft cannot change a table's comment after creating it.
public struct CaptureRecord: Equatable, Sendable {
    public static let setName = "capture_record"
    public var plan: UInt64
    public var live: UInt64

    public init(plan: UInt64, live: UInt64) {
        self.plan = plan
        self.live = live
    }

    public var encoded: String { "plan=\(Self.hex(plan)) live=\(Self.hex(live))" }

    public static func decode(_ text: String) -> CaptureRecord? {
        var plan: UInt64?, live: UInt64?
        for field in text.split(separator: " ") {
            let kv = field.split(separator: "=", maxSplits: 1)
            guard kv.count == 2, let v = UInt64(kv[1], radix: 16) else { continue }
            if kv[0] == "plan" { plan = v } else if kv[0] == "live" { live = v }
        }
        guard let plan, let live else { return nil }
        return CaptureRecord(plan: plan, live: live)
    }

    /// The nft commands that (re)write the record in the current table.
    public var script: String {
        let t = "\(NftTable.family) \(NftTable.name)"
        return "add set \(t) \(Self.setName) { type inet_service; }\nflush set \(t) \(Self.setName)\n"
            + "add element \(t) \(Self.setName) { 1 comment \"\(encoded)\" }\n"
    }

    static func hex(_ v: UInt64) -> String {
        let d = String(v, radix: 16)
        return String(repeating: "0", count: 16 - d.count) + d
    }

    /// FNV-1a, 64 bit: stable across runs and machines (Swift's Hasher is seeded per process).
    public static func fingerprint(_ text: String) -> UInt64 {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for b in text.utf8 {
            h ^= UInt64(b)
            h = h &* 0x0000_0100_0000_01b3
        }
        return h
    }
}
