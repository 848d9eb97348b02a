import Foundation
@testable import InterposeConfig

/// Loads one YAML text as `ConfigLoader.load(path:)` loads a file: decode, then cross-resource checks.
func loadYAML(_ yaml: String, file: String = "mesh.yaml") -> ConfigBundle {
    var bundle = ConfigBundle()
    ConfigLoader.load(text: yaml, file: file, into: &bundle)
    ConfigLoader.validateReferences(&bundle)
    return bundle
}

/// A fresh temporary directory, removed by the caller with `removeItem`.
func makeTemporaryDirectory() throws -> String {
    let dir = (NSTemporaryDirectory() as NSString).appendingPathComponent("interpose-config-\(UUID().uuidString)")
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    return dir
}

extension ConfigBundle {
    func virtualService(_ name: String) -> VirtualService? { virtualServices.first { $0.meta.name == name } }
    func destinationRule(_ name: String) -> DestinationRule? { destinationRules.first { $0.meta.name == name } }
    func serviceEntry(_ name: String) -> ServiceEntry? { serviceEntries.first { $0.meta.name == name } }
    /// Issues at exactly this field path.
    func issues(at path: String) -> [ConfigIssue] { issues.filter { $0.path == path } }
    var summary: String { issues.map(\.description).joined(separator: "\n") }
}

/// Wraps a VirtualService spec into a document (with the reviews DestinationRule its subsets need).
func virtualServiceDocument(_ spec: String, name: String = "reviews", namespace: String = "shop") -> String {
    """
    apiVersion: networking.istio.io/v1
    kind: VirtualService
    metadata:
      name: \(name)
      namespace: \(namespace)
    spec:
    \(spec.split(separator: "\n", omittingEmptySubsequences: false).map { "  " + $0 }.joined(separator: "\n"))
    ---
    apiVersion: networking.istio.io/v1
    kind: DestinationRule
    metadata:
      name: reviews
      namespace: shop
    spec:
      host: reviews.shop.svc.cluster.local
      subsets:
      - name: v1
        labels: {version: v1}
      - name: v2
        labels: {version: v2}
    """
}
