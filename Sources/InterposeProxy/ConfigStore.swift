import Foundation
import InterposeConfig
import InterposeFlow
import InterposePolicy
import InterposeKernel
import InterposeRouting
import NIOConcurrencyHelpers

/// Holds the routing table in force. Requests read it once each; a reload swaps it whole, so a
/// request in flight keeps the table it started with. A config with errors never replaces it.
public final class ConfigStore: Sendable {
    public let path: String
    private let current: NIOLockedValueBox<RoutingTable>
    private let state = NIOLockedValueBox<(generation: Int, fingerprint: String, lastErrors: [ConfigIssue])>((1, "", []))
    /// The bundle in force and the DNS answers its table was compiled with.
    private let inForce: NIOLockedValueBox<(bundle: ConfigBundle, resolved: [String: [String]])>

    /// FlowPolicy rules for the flow engine, compiled with the same bundle and DNS answers as the table.
    private let flow: NIOLockedValueBox<FlowRuleSet>

    /// Authorization, lists and rate limits, compiled with the same bundle; `lists` keeps fetched
    /// ValueList entries (and their failure counts) across reloads.
    private let policyBox: NIOLockedValueBox<PolicyEngine>
    public let lists = ValueListStore()
    public var policy: PolicyEngine { policyBox.withLockedValue { $0 } }
    /// The ValueLists of the config in force that are read from a file or a URL.
    public var listSources: [ValueListSource] { inForce.withLockedValue { lists.sources(of: $0.bundle) } }

    public var table: RoutingTable { current.withLockedValue { $0 } }
    public var flowRules: FlowRuleSet { flow.withLockedValue { $0 } }
    public var lastErrors: [ConfigIssue] { state.withLockedValue { $0.lastErrors } }

    /// Command-line settings that win over ProxyConfig, on every load.
    private let overrides: @Sendable (inout ProxySettings) -> Void

    public init(path: String, initial: ConfigBundle, overrides: @escaping @Sendable (inout ProxySettings) -> Void = { _ in }) {
        self.path = path
        self.overrides = overrides
        var initial = initial
        overrides(&initial.proxy)
        let resolved = DNSResolver.resolveAll(TableCompiler.namesToResolve(initial))
        current = NIOLockedValueBox(TableCompiler.compile(initial, generation: 1, resolved: resolved))
        inForce = NIOLockedValueBox((initial, resolved))
        flow = NIOLockedValueBox(FlowRuleSet.compile(initial.flowPolicies, generation: 1, hostAddresses: FlowRuleSet.hostAddresses(initial, resolved: resolved)))
        policyBox = NIOLockedValueBox(PolicyEngine.empty)
        policyBox.withLockedValue { $0 = PolicyEngine.compile(initial, lists: lists, previous: nil) }
        state.withLockedValue { $0.fingerprint = Self.fingerprint(path) }
    }

    public enum ReloadOutcome: Sendable {
        case unchanged
        case applied(generation: Int, warnings: [ConfigIssue])
        case refused([ConfigIssue])
    }

    /// Reloads when the files changed (name, size or modification time). Errors keep the old table.
    public func reloadIfChanged(force: Bool = false) -> ReloadOutcome {
        let fp = Self.fingerprint(path)
        if !force && fp == state.withLockedValue({ $0.fingerprint }) { return .unchanged }
        state.withLockedValue { $0.fingerprint = fp }
        guard var bundle = try? ConfigLoader.load(path: path) else {
            let issue = ConfigIssue(severity: .error, file: path, document: 0, resource: "", path: "", line: nil, message: "cannot read the config path")
            state.withLockedValue { $0.lastErrors = [issue] }
            return .refused([issue])
        }
        overrides(&bundle.proxy)
        guard bundle.errors.isEmpty else {
            state.withLockedValue { $0.lastErrors = bundle.errors }
            return .refused(bundle.errors)
        }
        let generation = state.withLockedValue { s -> Int in s.generation += 1; s.lastErrors = []; return s.generation }
        let resolved = DNSResolver.resolveAll(TableCompiler.namesToResolve(bundle))
        let table = TableCompiler.compile(bundle, generation: generation, resolved: resolved)
        current.withLockedValue { $0 = table }
        inForce.withLockedValue { $0 = (bundle, resolved) }
        recompileFlowRules(bundle, resolved, generation)
        let previousPolicy = policy
        let compiledPolicy = PolicyEngine.compile(bundle, lists: lists, previous: previousPolicy)
        policyBox.withLockedValue { $0 = compiledPolicy }
        return .applied(generation: generation, warnings: bundle.warnings)
    }

    /// Re-resolves the DNS names of ServiceEntries (resolution DNS) and swaps in a table with the new
    /// endpoints when an answer changed. Returns the new generation, or nil when nothing changed.
    public func refreshDNS() -> Int? {
        let (bundle, old) = inForce.withLockedValue { $0 }
        let names = TableCompiler.namesToResolve(bundle)
        guard !names.isEmpty else { return nil }
        let fresh = DNSResolver.resolveAll(names)
        guard fresh != old else { return nil }
        let generation = state.withLockedValue { s -> Int in s.generation += 1; return s.generation }
        current.withLockedValue { $0 = TableCompiler.compile(bundle, generation: generation, resolved: fresh) }
        inForce.withLockedValue { $0 = (bundle, fresh) }
        recompileFlowRules(bundle, fresh, generation)
        return generation
    }

    private func recompileFlowRules(_ bundle: ConfigBundle, _ resolved: [String: [String]], _ generation: Int) {
        let previous = flowRules
        let rules = FlowRuleSet.compile(bundle.flowPolicies, generation: generation,
                                        hostAddresses: FlowRuleSet.hostAddresses(bundle, resolved: resolved), previous: previous)
        flow.withLockedValue { $0 = rules }
    }

    static func fingerprint(_ path: String) -> String {
        let files = (try? ConfigLoader.files(at: path)) ?? []
        return files.map { f -> String in
            // Follow symlinks: a Kubernetes ConfigMap swaps the target behind a stable link.
            let a = try? FileManager.default.attributesOfItem(atPath: URL(fileURLWithPath: f).resolvingSymlinksInPath().path)
            let size = (a?[.size] as? NSNumber)?.intValue ?? -1
            let mtime = (a?[.modificationDate] as? Date)?.timeIntervalSince1970 ?? 0
            return "\(f):\(size):\(mtime)"
        }.joined(separator: "|")
    }
}

