import Foundation
import InterposeCapture

/// Canonical forms of nft listings for comparison: handles, counter values and the table comment
/// (which records run-time facts, not options) are left out.
enum NftJSON {
    static func canonical(_ text: String) -> String? {
        guard let data = text.data(using: .utf8),
              let root = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
              let items = root["nftables"] as? [Any] else { return nil }
        let kept = items.compactMap { item -> Any? in
            guard let dict = item as? [String: Any], dict["metainfo"] == nil else { return nil }
            if let set = dict["set"] as? [String: Any], set["name"] as? String == CaptureRecord.setName { return nil }
            return strip(dict)
        }
        guard let out = try? JSONSerialization.data(withJSONObject: kept, options: [.sortedKeys]) else { return nil }
        return String(decoding: out, as: UTF8.self)
    }

    static func strip(_ value: Any) -> Any {
        if let d = value as? [String: Any] {
            var out: [String: Any] = [:]
            for (k, v) in d where k != "handle" && k != "comment" || (k == "comment" && d["expr"] != nil) {
                out[k] = k == "counter" ? "counter" : strip(v)
            }
            return out
        }
        if let a = value as? [Any] { return a.map(strip) }
        return value
    }

    /// `nft -s list table` lines without the table comment and blank lines, trimmed.
    static func comparableLines(_ text: String) -> [String] {
        var out: [String] = []
        var inRecord = false
        for raw in text.split(separator: "\n") {
            let line = raw.trimmingCharacters(in: .whitespaces)
            if line.hasPrefix("set \(CaptureRecord.setName) ") { inRecord = true; continue }
            if inRecord { if line == "}" { inRecord = false }; continue }
            if line.isEmpty || line.hasPrefix("comment \"interpose-init") { continue }
            out.append(line)
        }
        return out
    }
}
