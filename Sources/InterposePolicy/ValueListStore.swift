import InterposeCapture
import InterposeConfig
import InterposeFlow
import Synchronization

public enum ValueListError: Error, Sendable, Equatable, CustomStringConvertible {
    /// No ValueList of that `namespace/name` is in the compiled config.
    case unknownList(String)
    /// An entry that cannot be on a list of its type (a bad CIDR, a bad regex): the whole update is refused.
    case invalidEntry(list: String, index: Int, entry: String, reason: String)

    public var description: String {
        switch self {
        case .unknownList(let l): return "no ValueList \(l) in the configuration"
        case .invalidEntry(let l, let i, let e, let r): return "ValueList \(l): entry \(i + 1) '\(e)' is \(r); the last good list stays in force"
        }
    }
}

/// A list whose entries the proxy must fetch (the engine does no I/O): read `file` or GET `url` every
/// `refreshInterval` seconds, then `ValueListStore.update` with `ValueListStore.parseEntries` of the text
/// (or `recordRefreshFailure` when the read fails).
public struct ValueListSource: Sendable, Equatable {
    /// `namespace/name`, the key of `update`.
    public var list: String
    public var file: String?
    public var url: String?
    public var refreshInterval: Double
    public init(list: String, file: String?, url: String?, refreshInterval: Double) {
        self.list = list
        self.file = file
        self.url = url
        self.refreshInterval = refreshInterval
    }
}

/// Entries compiled for lookups: hash sets for strings, a prefix trie per family for addresses, one combined
/// regular expression.
struct CompiledEntries: @unchecked Sendable { // Regex values are immutable once built; read from any thread
    enum Storage {
        case strings(Set<String>)
        case foldedStrings(Set<String>)
        case addresses(IPSet)
        case regex(Regex<AnyRegexOutput>?)
    }
    let storage: Storage
    let count: Int

    static let empty = CompiledEntries(storage: .strings([]), count: 0)

    /// Compiles every entry or reports the first that cannot be compiled.
    struct BadEntry: Error { let index: Int, entry: String, reason: String }

    static func compile(_ entries: [String], type: ValueListEntryType) -> Result<CompiledEntries, BadEntry> {
        for (i, e) in entries.enumerated() {
            if let problem = valueListEntryProblem(e, type: type) { return .failure(BadEntry(index: i, entry: e, reason: problem)) }
        }
        switch type {
        case .strings: return .success(CompiledEntries(storage: .strings(Set(entries)), count: entries.count))
        case .caseInsensitiveStrings: return .success(CompiledEntries(storage: .foldedStrings(Set(entries.map { $0.lowercased() })), count: entries.count))
        case .ipAddresses:
            let cidrs = entries.compactMap { try? CIDR.parse($0).get() }
            return .success(CompiledEntries(storage: .addresses(IPSet(cidrs)), count: entries.count))
        case .regex:
            if entries.isEmpty { return .success(CompiledEntries(storage: .regex(nil), count: 0)) }
            let combined = entries.map { "(?:\($0))" }.joined(separator: "|")
            guard let regex = try? Regex(combined) else { return .failure(BadEntry(index: 0, entry: entries[0], reason: "not combinable with the other entries into one regular expression")) }
            return .success(CompiledEntries(storage: .regex(regex), count: entries.count))
        }
    }

    func contains(_ value: String) -> Bool {
        switch storage {
        case .strings(let set): return set.contains(value)
        case .foldedStrings(let set): return set.contains(value.lowercased())
        case .addresses(let set): return FlowAddress(value).map(set.contains) ?? false
        case .regex(let regex):
            guard let regex else { return false }
            return (try? regex.firstMatch(in: value)) != nil
        }
    }

    func contains(_ address: FlowAddress) -> Bool {
        if case .addresses(let set) = storage { return set.contains(address) }
        return contains(address.description)
    }

    var isAddressList: Bool { if case .addresses = storage { return true } else { return false } }
}

/// One list's state: what the config says, what was last fetched, and the compiled entries in force.
struct ListState: Sendable {
    var definition: ValueList
    /// The last good fetched entries (nil until the first successful update).
    var fetched: [String]?
    var compiled: CompiledEntries
    var failures = 0
    var lastFailure: String?
}

final class ListSlot: Sendable {
    let id: String
    let state: Mutex<ListState>
    init(id: String, state: ListState) {
        self.id = id
        self.state = Mutex(state)
    }
    var entries: CompiledEntries { state.withLock { $0.compiled } }
}

/// The current entries of every ValueList, swapped whole on update. Shared by the engines compiled from
/// successive configs (a reload keeps what was fetched and the failure counts), and by the proxy's fetchers.
public final class ValueListStore: Sendable {
    private let slots = Mutex<[String: ListSlot]>([:])

    public init() {}

    /// Installs the lists of a config (called by `PolicyEngine.compile`): inline entries plus the last good
    /// fetched ones, compiled for the list's type. Lists no longer in the config are dropped.
    func define(_ lists: [ValueList]) -> [String: ListSlot] {
        slots.withLock { slots in
            var out: [String: ListSlot] = [:]
            for list in lists {
                let id = list.id
                if let slot = slots[id] {
                    slot.state.withLock { s in
                        s.definition = list
                        let fetched = (list.file != nil || list.url != nil) ? s.fetched : nil
                        s.fetched = fetched
                        s.compiled = (try? CompiledEntries.compile(list.entries + (fetched ?? []), type: list.entryType).get())
                            ?? (try? CompiledEntries.compile(list.entries, type: list.entryType).get()) ?? .empty
                    }
                    out[id] = slot
                } else {
                    let compiled = (try? CompiledEntries.compile(list.entries, type: list.entryType).get()) ?? .empty
                    out[id] = ListSlot(id: id, state: ListState(definition: list, fetched: nil, compiled: compiled))
                }
            }
            slots = out
            return out
        }
    }

    private func slot(_ list: String) -> ListSlot? { slots.withLock { $0[list] } }

    /// New fetched entries for a list (`namespace/name`), added to its inline entries. Every entry must be
    /// valid for the list's type; otherwise nothing changes, the failure is counted and reported.
    /// Returns the number of entries now in force.
    public func update(_ list: String, entries: [String]) -> Result<Int, ValueListError> {
        guard let slot = slot(list) else { return .failure(.unknownList(list)) }
        return slot.state.withLock { s in
            switch CompiledEntries.compile(s.definition.entries + entries, type: s.definition.entryType) {
            case .success(let compiled):
                s.fetched = entries
                s.compiled = compiled
                return .success(compiled.count)
            case .failure(let bad):
                let index = bad.index - s.definition.entries.count
                let error = ValueListError.invalidEntry(list: list, index: max(0, index), entry: bad.entry, reason: bad.reason)
                s.failures += 1
                s.lastFailure = error.description
                return .failure(error)
            }
        }
    }

    /// A fetch that failed (file unreadable, HTTP error, timeout): counted; the last good list stays.
    public func recordRefreshFailure(_ list: String, reason: String) {
        slot(list)?.state.withLock { s in
            s.failures += 1
            s.lastFailure = reason
        }
    }

    /// Failed refreshes and refused updates of a list since it was first configured.
    public func refreshFailures(_ list: String) -> Int { slot(list)?.state.withLock { $0.failures } ?? 0 }

    /// The reason of the last failure, nil if none.
    public func lastRefreshFailure(_ list: String) -> String? { slot(list)?.state.withLock { $0.lastFailure } }

    /// Entries in force (inline plus fetched), nil for an unknown list.
    public func entryCount(_ list: String) -> Int? { slot(list)?.entries.count }

    /// Whether a value is on a list (nil for an unknown list): what a check sees.
    public func contains(_ list: String, value: String) -> Bool? { slot(list)?.entries.contains(value) }

    /// The lists of a config that need a file read or a URL fetched, and how often.
    public func sources(of bundle: ConfigBundle) -> [ValueListSource] {
        bundle.valueLists.filter { $0.file != nil || $0.url != nil }
            .sorted { $0.id < $1.id }
            .map { ValueListSource(list: $0.id, file: $0.file, url: $0.url, refreshInterval: $0.refreshInterval) }
    }

    /// Entries from a fetched text: one a line, surrounding blanks trimmed, blank lines and `#` comments skipped.
    public static func parseEntries(_ text: String) -> [String] {
        text.split(whereSeparator: { $0 == "\n" || $0 == "\r\n" || $0 == "\r" }).compactMap { line in
            var s = Substring(line)
            if let hash = s.firstIndex(of: "#") { s = s[..<hash] }
            while let f = s.first, f == " " || f == "\t" { s = s.dropFirst() }
            while let l = s.last, l == " " || l == "\t" { s = s.dropLast() }
            return s.isEmpty ? nil : String(s)
        }
    }
}

/// A ValueList used as a CUSTOM provider: its check looks the attribute up in the list.
struct ListProvider: Sendable {
    let id: String
    let slot: ListSlot
    let attributeName: PolicyAttribute
    let attribute: AttrRef
    let blacklist: Bool
    let status: Int
    let message: String
    let grpcStatus: Int

    init(list: ValueList, check: ValueListCheck, slot: ListSlot, attribute: AttrRef) {
        id = list.id
        self.slot = slot
        attributeName = check.attribute
        self.attribute = attribute
        blacklist = list.blacklist
        status = check.status
        message = check.message ?? "\(check.attribute) is \(list.blacklist ? "blacklisted" : "not whitelisted")"
        grpcStatus = check.grpcStatus ?? InterposePolicy.grpcStatus(forHTTPStatus: check.status)
    }

    /// Whether the value is on the list, nil when the attribute is absent.
    func lookup(_ a: some AttributeSource, _ cache: inout AttributeCache) -> (found: Bool, value: String?)? {
        let entries = slot.entries
        if attribute.isAddress {
            guard let addr = cache.address(attribute, a) else { return nil }
            return (entries.contains(addr), nil)
        }
        guard let v = cache.string(attribute, a) else { return nil }
        return (entries.contains(v), v)
    }

    /// Allowed: a whitelist holds the value, a blacklist does not. An absent attribute is on no list (a
    /// whitelist denies it, a blacklist allows it).
    func allows(_ a: some AttributeSource, _ cache: inout AttributeCache) -> Bool {
        let found = lookup(a, &cache)?.found ?? false
        return blacklist ? !found : found
    }
}
