import Testing
@testable import InterposeConfig
import InterposeFlow
@testable import InterposePolicy

/// ValueList: Mixer's list checker as a CUSTOM provider. Entry types, whitelist and blacklist, refreshes.
@Suite("ValueList: entry types, whitelist and blacklist, refresh failures")
struct ValueListTests {
    /// A list plus a CUSTOM policy sending every request to it.
    static func listYAML(_ name: String = "list", blacklist: Bool = false, entryType: String, attribute: String, entries: [String],
                         extra: String = "") -> String {
        authz("check-\(name)", action: "CUSTOM", provider: name, rules: "- {}") + "---\n" + """
        apiVersion: interpose.dev/v1alpha1
        kind: ValueList
        metadata: {name: \(name), namespace: shop}
        spec:
          blacklist: \(blacklist)
          entryType: \(entryType)
          entries: [\(entries.map { "\"\($0)\"" }.joined(separator: ", "))]
          check: {attribute: "\(attribute)"}
        \(extra)

        """
    }

    @Test func strings() {
        let engine = makeEngine(Self.listYAML(entryType: "STRINGS", attribute: "request.headers[x-user]", entries: ["alice", "bob"]))
        #expect(engine.allows(Req.http(headers: ["x-user": "alice"])))
        #expect(!engine.allows(Req.http(headers: ["x-user": "Alice"])), "STRINGS are case-sensitive")
        #expect(!engine.allows(Req.http(headers: ["x-user": "carol"])))
        let v = engine.verdict(Req.http(headers: ["x-user": "carol"]))
        #expect(v.outcome == .deny(status: 403, message: "request.headers[x-user] is not whitelisted") && v.kind == "list" && v.policy == "shop/check-list")
    }

    @Test func caseInsensitiveStrings() {
        let engine = makeEngine(Self.listYAML(entryType: "CASE_INSENSITIVE_STRINGS", attribute: "request.headers[x-user]", entries: ["Alice"]))
        #expect(engine.allows(Req.http(headers: ["x-user": "ALICE"])))
        #expect(engine.allows(Req.http(headers: ["x-user": "alice"])))
        #expect(!engine.allows(Req.http(headers: ["x-user": "alicia"])))
    }

    @Test func ipAddresses() {
        let engine = makeEngine(Self.listYAML(blacklist: true, entryType: "IP_ADDRESSES", attribute: "source.ip",
                                              entries: ["203.0.113.0/24", "198.51.100.7", "2001:db8:bad::/48"]))
        #expect(!engine.allows(Req.http(from: "203.0.113.200")))
        #expect(!engine.allows(Req.http(from: "198.51.100.7")))
        #expect(engine.allows(Req.http(from: "198.51.100.8")))
        #expect(!engine.allows(Req.http(from: "2001:db8:bad::1")), "IPv6 prefixes are prefixes (Mixer appended /32 to them)")
        #expect(engine.allows(Req.http(from: "2001:db8:bae::1")))
        let v = engine.verdict(Req.http(from: "203.0.113.1"))
        #expect(v.outcome == .deny(status: 403, message: "source.ip is blacklisted"))
        #expect(!engine.allows(Req.tcp(from: "203.0.113.9")), "connections are checked too")
        // An address in a header is compared as an address.
        let header = makeEngine(Self.listYAML(entryType: "IP_ADDRESSES", attribute: "request.headers[x-client]", entries: ["10.0.0.0/8"]))
        #expect(header.allows(Req.http(headers: ["x-client": "10.2.3.4"])))
        #expect(!header.allows(Req.http(headers: ["x-client": "not-an-address"])))
    }

    @Test func regexIsSearchedUnanchored() {
        let engine = makeEngine(Self.listYAML(blacklist: true, entryType: "REGEX", attribute: "request.headers[user-agent]",
                                              entries: ["curl/[0-9.]+", "^bot-", "(?i)scanner"]))
        #expect(!engine.allows(Req.http(headers: ["user-agent": "curl/8.1.2"])))
        #expect(!engine.allows(Req.http(headers: ["user-agent": "Mozilla compatible; curl/7.0"])), "unanchored, as Mixer's list")
        #expect(!engine.allows(Req.http(headers: ["user-agent": "bot-3000"])))
        #expect(engine.allows(Req.http(headers: ["user-agent": "a bot-3000"])), "^ anchors")
        #expect(!engine.allows(Req.http(headers: ["user-agent": "Big SCANNER"])))
        #expect(engine.allows(Req.http(headers: ["user-agent": "Mozilla/5.0"])))
    }

    @Test func absentAttributeIsOnNoList() {
        let white = makeEngine(Self.listYAML(entryType: "STRINGS", attribute: "request.headers[x-user]", entries: ["alice"]))
        #expect(!white.allows(Req.http()), "a whitelist denies a request without the value")
        let black = makeEngine(Self.listYAML(blacklist: true, entryType: "STRINGS", attribute: "request.headers[x-user]", entries: ["alice"]))
        #expect(black.allows(Req.http()), "a blacklist allows it")
    }

    @Test func checkStatusMessageAndGRPC() {
        let yaml = authz("guard", action: "CUSTOM", provider: "blocked", rules: "- {}") + "---\n" + """
        apiVersion: interpose.dev/v1alpha1
        kind: ValueList
        metadata: {name: blocked, namespace: shop}
        spec:
          blacklist: true
          entries: [mallory]
          check: {attribute: "request.headers[x-user]", status: 401, message: go away}
        """
        let engine = makeEngine(yaml)
        var r = Req.http(headers: ["x-user": "mallory"])
        r.isGRPC = true
        let v = engine.verdict(r)
        #expect(v.outcome == .deny(status: 401, message: "go away") && v.grpcStatus == 16)
    }

    @Test func fetchedEntriesJoinInlineOnesAndAFailedUpdateKeepsTheLastGoodList() {
        let store = ValueListStore()
        let yaml = Self.listYAML(entryType: "IP_ADDRESSES", attribute: "source.ip", entries: ["10.0.0.0/8"],
                                 extra: "  url: http://lists.example/allowed.txt\n  refreshInterval: 30s")
        let engine = makeEngine(yaml, lists: store)
        #expect(store.entryCount("shop/list") == 1)
        #expect(!engine.allows(Req.http(from: "192.0.2.1")), "not fetched yet: only the inline entries")
        #expect(engine.allows(Req.http(from: "10.1.1.1")))

        #expect(store.update("shop/list", entries: ValueListStore.parseEntries("# allowed\n192.0.2.0/24\n\n  198.51.100.1  # one host\n")) == .success(3))
        #expect(engine.allows(Req.http(from: "192.0.2.1")), "the engine sees the update at once")
        #expect(engine.allows(Req.http(from: "198.51.100.1")))
        #expect(engine.allows(Req.http(from: "10.1.1.1")), "inline entries stay")

        let bad = store.update("shop/list", entries: ["192.0.2.0/24", "300.1.1.1"])
        #expect(bad == .failure(.invalidEntry(list: "shop/list", index: 1, entry: "300.1.1.1", reason: valueListEntryProblem("300.1.1.1", type: .ipAddresses)!)))
        #expect(store.refreshFailures("shop/list") == 1)
        #expect(engine.allows(Req.http(from: "198.51.100.1")), "the last good list stays in force")

        store.recordRefreshFailure("shop/list", reason: "GET http://lists.example/allowed.txt: 503")
        #expect(store.refreshFailures("shop/list") == 2)
        #expect(store.lastRefreshFailure("shop/list") == "GET http://lists.example/allowed.txt: 503")
        #expect(engine.allows(Req.http(from: "198.51.100.1")))

        #expect(store.update("shop/list", entries: ["192.0.2.0/24"]) == .success(2))
        #expect(!engine.allows(Req.http(from: "198.51.100.1")), "a good update replaces the fetched entries")
        #expect(store.refreshFailures("shop/list") == 2, "failures are a running count")
        #expect(store.update("shop/nope", entries: []) == .failure(.unknownList("shop/nope")))
    }

    @Test func aReloadKeepsFetchedEntriesAndCounts() {
        let store = ValueListStore()
        let yaml = Self.listYAML(entryType: "STRINGS", attribute: "request.headers[x-user]", entries: [], extra: "  file: /etc/interpose/users.txt")
        _ = makeEngine(yaml, lists: store)
        _ = store.update("shop/list", entries: ["alice"])
        store.recordRefreshFailure("shop/list", reason: "unreadable")
        let reloaded = makeEngine(yaml, lists: store)
        #expect(reloaded.allows(Req.http(headers: ["x-user": "alice"])))
        #expect(store.refreshFailures("shop/list") == 1)
        // A list that leaves the config is forgotten.
        _ = makeEngine("", lists: store)
        #expect(store.entryCount("shop/list") == nil)
    }

    @Test func sourcesSayWhatToFetch() {
        let yaml = Self.listYAML("a", entryType: "STRINGS", attribute: "request.headers[x-user]", entries: [], extra: "  file: /etc/users.txt")
            + "---\n" + Self.listYAML("b", entryType: "STRINGS", attribute: "request.headers[x-user]", entries: ["x"])
            + "---\n" + Self.listYAML("c", entryType: "STRINGS", attribute: "request.headers[x-user]", entries: [],
                                      extra: "  url: http://lists.example/c\n  refreshInterval: 5m")
        let bundle = loadPolicyYAML(yaml)
        #expect(bundle.errors.isEmpty, "\(bundle.summary)")
        #expect(ValueListStore().sources(of: bundle) == [
            ValueListSource(list: "shop/a", file: "/etc/users.txt", url: nil, refreshInterval: 60),
            ValueListSource(list: "shop/c", file: nil, url: "http://lists.example/c", refreshInterval: 300),
        ])
        // https is refused at load: the fetcher speaks plain HTTP only.
        let https = loadPolicyYAML(Self.listYAML("d", entryType: "STRINGS", attribute: "request.headers[x-user]", entries: [],
                                                 extra: "  url: https://lists.example/d"))
        #expect(https.errors.contains { $0.path == "spec.url" && $0.message.contains("not an http:// URL") }, "\(https.summary)")
    }

    @Test func parseEntries() {
        #expect(ValueListStore.parseEntries("a\r\n b \n#c\n\n d # e\n\t") == ["a", "b", "d"])
    }

    @Test func storeLookups() {
        let store = ValueListStore()
        _ = makeEngine(Self.listYAML(entryType: "CASE_INSENSITIVE_STRINGS", attribute: "request.headers[x]", entries: ["Yes"]), lists: store)
        #expect(store.contains("shop/list", value: "YES") == true)
        #expect(store.contains("shop/list", value: "no") == false)
        #expect(store.contains("shop/other", value: "YES") == nil)
    }
}
