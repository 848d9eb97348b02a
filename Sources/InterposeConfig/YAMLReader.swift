import Foundation
import Yams

/// Reads one YAML mapping field by field, recording the field path for messages and warning about
/// fields it was never asked for (unknown fields warn; they never fail, as Istio's own readers do).
struct MapReader {
    let node: Node
    let path: String
    let diagnostics: Diagnostics
    private let pairs: [(String, Node)]
    private final class Seen { var keys: Set<String> = [] }
    private let seen = Seen()

    init?(_ node: Node, path: String, diagnostics: Diagnostics) {
        guard let mapping = node.mapping else {
            diagnostics.error(path, "expected a mapping (key: value)", line: node.line)
            return nil
        }
        self.node = node
        self.path = path
        self.diagnostics = diagnostics
        self.pairs = mapping.map { ($0.key.string ?? "", $0.value) }
    }

    func sub(_ key: String) -> String { path.isEmpty ? key : "\(path).\(key)" }

    func raw(_ key: String) -> Node? {
        seen.keys.insert(key)
        return pairs.first { $0.0 == key }?.1
    }

    func has(_ key: String) -> Bool { pairs.contains { $0.0 == key } }

    func string(_ key: String) -> String? {
        guard let n = raw(key) else { return nil }
        guard let s = n.scalar?.string else { diagnostics.error(sub(key), "expected a string", line: n.line); return nil }
        return s
    }

    func int(_ key: String, range: ClosedRange<Int>? = nil) -> Int? {
        guard let n = raw(key) else { return nil }
        guard let s = n.scalar?.string, let v = Int(s) else { diagnostics.error(sub(key), "expected an integer", line: n.line); return nil }
        if let range, !range.contains(v) {
            diagnostics.error(sub(key), "\(v) is out of range \(range.lowerBound)-\(range.upperBound)", line: n.line)
            return nil
        }
        return v
    }

    func double(_ key: String) -> Double? {
        guard let n = raw(key) else { return nil }
        guard let s = n.scalar?.string, let v = Double(s) else { diagnostics.error(sub(key), "expected a number", line: n.line); return nil }
        return v
    }

    func bool(_ key: String) -> Bool? {
        guard let n = raw(key) else { return nil }
        switch n.scalar?.string.lowercased() {
        case "true", "yes", "on": return true
        case "false", "no", "off": return false
        default: diagnostics.error(sub(key), "expected true or false", line: n.line); return nil
        }
    }

    /// `10s`, `1.5s`, `250ms`, `1m`, `1h` as seconds.
    func duration(_ key: String) -> Double? {
        guard let text = string(key) else { return nil }
        guard let v = parseDuration(text) else {
            diagnostics.error(sub(key), "'\(text)' is not a duration (expected a number with a unit: 250ms, 10s, 1m, 1h)", line: raw(key)?.line)
            return nil
        }
        return v
    }

    func map(_ key: String) -> MapReader? {
        guard let n = raw(key) else { return nil }
        return MapReader(n, path: sub(key), diagnostics: diagnostics)
    }

    /// Each element of a list, with its indexed path.
    func list(_ key: String) -> [(node: Node, path: String)] {
        guard let n = raw(key) else { return [] }
        guard let seq = n.sequence else { diagnostics.error(sub(key), "expected a list", line: n.line); return [] }
        return seq.enumerated().map { ($0.element, "\(sub(key))[\($0.offset)]") }
    }

    func maps(_ key: String) -> [MapReader] {
        list(key).compactMap { MapReader($0.node, path: $0.path, diagnostics: diagnostics) }
    }

    func strings(_ key: String) -> [String] {
        list(key).compactMap { item in
            guard let s = item.node.scalar?.string else { diagnostics.error(item.path, "expected a string", line: item.node.line); return nil }
            return s
        }
    }

    func stringMap(_ key: String) -> [String: String] {
        guard let r = map(key) else { return [:] }
        var out: [String: String] = [:]
        for (k, v) in r.pairs {
            r.seen.keys.insert(k)
            if let s = v.scalar?.string { out[k] = s } else { diagnostics.error(r.sub(k), "expected a string", line: v.line) }
        }
        return out
    }

    /// Each key of a mapping whose values are mappings (headers: {name: {exact: ...}}).
    func keyedMaps(_ key: String) -> [(String, MapReader)] {
        guard let r = map(key) else { return [] }
        var out: [(String, MapReader)] = []
        for (k, v) in r.pairs {
            r.seen.keys.insert(k)
            if let m = MapReader(v, path: r.sub(k), diagnostics: diagnostics) { out.append((k, m)) }
        }
        return out
    }

    /// Warns once about every key nobody read.
    func finish() {
        for (k, v) in pairs where !seen.keys.contains(k) {
            diagnostics.warning(sub(k), "unknown field, ignored", line: v.line)
        }
    }

    /// Marks keys as read on purpose without using them (accepted and not acted on).
    func accept(_ keys: String...) { for k in keys { seen.keys.insert(k) } }
}

extension Node {
    var line: Int? { mark.map { $0.line } }
    var string: String? { scalar?.string }
}

/// `10s`, `1.5s`, `250ms`, `1m`, `1h`, `1h30m`, `0` as seconds (Go's duration syntax, which Istio accepts).
public func parseDuration(_ text: String) -> Double? {
    let t = Substring(text.trimmingCharacters(in: .whitespaces))
    if t == "0" { return 0 }
    let units: [(String, Double)] = [("ns", 1e-9), ("us", 1e-6), ("µs", 1e-6), ("ms", 1e-3), ("s", 1), ("m", 60), ("h", 3600)]
    var rest = t
    var total = 0.0
    while !rest.isEmpty {
        let number = rest.prefix { $0.isASCII && ($0.isNumber || $0 == ".") }
        guard !number.isEmpty, let v = Double(number) else { return nil }
        rest = rest.dropFirst(number.count)
        let unitText = rest.prefix { !($0.isASCII && ($0.isNumber || $0 == ".")) }
        guard let unit = units.first(where: { $0.0 == unitText }) else { return nil }
        rest = rest.dropFirst(unitText.count)
        total += v * unit.1
    }
    return t.isEmpty ? nil : total
}
