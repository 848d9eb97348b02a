import InterposeCapture

// MARK: - ValueList (interpose.dev/v1alpha1): Mixer's list adapter (listchecker), in process.

public enum ValueListEntryType: String, Sendable, Equatable, CaseIterable {
    case strings = "STRINGS"
    case caseInsensitiveStrings = "CASE_INSENSITIVE_STRINGS"
    /// Addresses and CIDRs of both families (a prefix trie per family).
    case ipAddresses = "IP_ADDRESSES"
    /// Regular expressions, searched in the value (unanchored, as Mixer did: anchor with ^...$).
    case regex = "REGEX"
}

/// Which attribute a list checks, and the answer when the check fails.
public struct ValueListCheck: Sendable, Equatable {
    public var attribute: PolicyAttribute
    /// HTTP status of a denial (default 403).
    public var status: Int
    /// Response body; nil: `<attribute> is not whitelisted` / `<attribute> is blacklisted`.
    public var message: String?
    /// grpc-status for gRPC requests; nil: derived from `status`.
    public var grpcStatus: Int?
}

public struct ValueList: Sendable, Equatable {
    public var meta: ResourceMeta
    /// false (default): a whitelist, the value must be on it; true: a blacklist, it must not be.
    public var blacklist: Bool
    public var entryType: ValueListEntryType
    /// Inline entries; always part of the list, fetched entries are added to them.
    public var entries: [String]
    /// A file to read entries from (one a line, `#` comments), re-read every `refreshInterval`.
    public var file: String?
    /// An http(s) URL to fetch entries from (same format), every `refreshInterval`.
    public var url: String?
    /// Seconds between refreshes of `file` or `url` (default 60).
    public var refreshInterval: Double
    /// The rule: which attribute is checked against the list. Needed to use the list as a CUSTOM provider.
    public var check: ValueListCheck?
    public var id: String { "\(meta.namespace)/\(meta.name)" }
}

/// Why an entry cannot be on a list of the given type; nil when it can.
public func valueListEntryProblem(_ entry: String, type: ValueListEntryType) -> String? {
    switch type {
    case .strings, .caseInsensitiveStrings: return nil
    case .ipAddresses:
        if case .failure(let e) = CIDR.parse(entry) { return "not an IPv4 or IPv6 address or CIDR (\(e))" }
        return nil
    case .regex:
        do { _ = try Regex(entry); return nil } catch { return "not a valid regular expression (\(error))" }
    }
}

extension ResourceDecoder {
    func valueList(_ spec: MapReader, meta: ResourceMeta) -> ValueList {
        defer { spec.finish() }
        let blacklist = spec.bool("blacklist") ?? false
        var entryType = ValueListEntryType.strings
        if let t = spec.string("entryType") {
            if let v = ValueListEntryType(rawValue: t.uppercased()) { entryType = v } else {
                diagnostics.error(spec.sub("entryType"), "'\(t)' is not STRINGS, CASE_INSENSITIVE_STRINGS, IP_ADDRESSES or REGEX", line: spec.raw("entryType")?.line)
            }
        }
        // `overrides` is Mixer's name for the inline entries.
        let entriesKey = spec.has("entries") || !spec.has("overrides") ? "entries" : "overrides"
        if entriesKey == "entries" && spec.has("overrides") {
            diagnostics.error(spec.sub("overrides"), "give inline entries once, in `entries` (`overrides` is Mixer's old name for them)")
            spec.accept("overrides")
        }
        var entries: [String] = []
        for item in spec.list(entriesKey) {
            guard let s = item.node.string else { diagnostics.error(item.path, "expected a string", line: item.node.line); continue }
            if let problem = valueListEntryProblem(s, type: entryType) {
                diagnostics.error(item.path, "'\(s)' is \(problem)", line: item.node.line)
                continue
            }
            entries.append(s)
        }
        let file = spec.string("file")
        let urlKey = spec.has("providerUrl") && !spec.has("url") ? "providerUrl" : "url"
        let url = spec.string(urlKey)
        // The proxy fetches lists over plain HTTP only (no TLS client here): an https URL would fail every refresh.
        if let url, !url.hasPrefix("http://") {
            diagnostics.error(spec.sub(urlKey), "'\(url)' is not an http:// URL (https is not fetched; serve the list over http or use a file)", line: spec.raw(urlKey)?.line)
        }
        if file != nil && url != nil {
            diagnostics.error(spec.sub("file"), "a list is fetched from a file or a URL, not both")
        }
        var refresh = 60.0
        if let d = spec.duration("refreshInterval") {
            if d < 1 { diagnostics.error(spec.sub("refreshInterval"), "must be at least 1s") } else { refresh = d }
        }
        if spec.has("refreshInterval") && file == nil && url == nil {
            diagnostics.warning(spec.sub("refreshInterval"), "the list has no file or url to refresh")
        }
        spec.accept("ttl", "cachingInterval", "cachingUseCount")
        for key in ["ttl", "cachingInterval", "cachingUseCount"] where spec.has(key) {
            diagnostics.warning(spec.sub(key), "Mixer's \(key) is not used: the last good list stays in force until a refresh succeeds, and checks are not cached (they are in process)")
        }
        var check: ValueListCheck?
        if let c = spec.map("check") {
            defer { c.finish() }
            let status = c.int("status", range: 200...599) ?? 403
            let message = c.string("message")
            let grpc = c.int("grpcStatus", range: 0...16)
            if let name = c.string("attribute") {
                if let a = PolicyAttribute.parse(name) {
                    check = ValueListCheck(attribute: a, status: status, message: message, grpcStatus: grpc)
                    if case .requestAuth = a { diagnostics.warning(c.sub("attribute"), "there is no request authentication (JWT) in Interpose: \(name) is never present") }
                } else {
                    diagnostics.error(c.sub("attribute"), "'\(name)' is not a supported attribute (\(PolicyAttribute.names))", line: c.raw("attribute")?.line)
                }
            } else {
                diagnostics.error(c.sub("attribute"), "a check names the attribute to look up in the list", line: c.node.line)
            }
        }
        if entries.isEmpty && file == nil && url == nil && !spec.has(entriesKey) {
            diagnostics.warning("spec", "the list has no entries, file or url: it is empty")
        }
        return ValueList(meta: meta, blacklist: blacklist, entryType: entryType, entries: entries, file: file, url: url, refreshInterval: refresh, check: check)
    }
}
