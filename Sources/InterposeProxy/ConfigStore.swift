import Foundation
import InterposeConfig
import InterposeKernel
import InterposeRouting
import NIOConcurrencyHelpers

/// Holds the routing table in force. Requests read it once each; a reload swaps it whole, so a
/// request in flight keeps the table it started with. A config with errors never replaces it.
public final class ConfigStore: Sendable {
    public let path: String
    private let current: NIOLockedValueBox<RoutingTable>
    private let state = NIOLockedValueBox<(generation: Int, fingerprint: String, lastErrors: [ConfigIssue])>((1, "", []))

    public var table: RoutingTable { current.withLockedValue { $0 } }
    public var lastErrors: [ConfigIssue] { state.withLockedValue { $0.lastErrors } }

    public init(path: String, initial: ConfigBundle) {
        self.path = path
        current = NIOLockedValueBox(TableCompiler.compile(initial, generation: 1, resolved: DNSResolver.resolveAll(TableCompiler.namesToResolve(initial))))
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
        guard let bundle = try? ConfigLoader.load(path: path) else {
            let issue = ConfigIssue(severity: .error, file: path, document: 0, resource: "", path: "", line: nil, message: "cannot read the config path")
            state.withLockedValue { $0.lastErrors = [issue] }
            return .refused([issue])
        }
        guard bundle.errors.isEmpty else {
            state.withLockedValue { $0.lastErrors = bundle.errors }
            return .refused(bundle.errors)
        }
        let generation = state.withLockedValue { s -> Int in s.generation += 1; s.lastErrors = []; return s.generation }
        let table = TableCompiler.compile(bundle, generation: generation, resolved: DNSResolver.resolveAll(TableCompiler.namesToResolve(bundle)))
        current.withLockedValue { $0 = table }
        return .applied(generation: generation, warnings: bundle.warnings)
    }

    static func fingerprint(_ path: String) -> String {
        let files = (try? ConfigLoader.files(at: path)) ?? []
        return files.map { f -> String in
            let a = try? FileManager.default.attributesOfItem(atPath: f)
            let size = (a?[.size] as? NSNumber)?.intValue ?? -1
            let mtime = (a?[.modificationDate] as? Date)?.timeIntervalSince1970 ?? 0
            return "\(f):\(size):\(mtime)"
        }.joined(separator: "|")
    }
}

