// The per-request cost of the policy check, and the config bench/run.sh uses to measure the
// proxy's throughput with policy on. Run by bench/policy.sh (release build); not a test.
//
//   interpose-policy-bench micro [--rules 100] [--limits 10] [--iterations 2000000]
//   interpose-policy-bench yaml  [--rules 100] [--limits 10] [--source-cidr 10.244.0.0/16]
import Foundation
import InterposeConfig
import InterposeFlow
import InterposePolicy
import InterposeProxy

func option(_ name: String, _ fallback: String) -> String {
    let args = CommandLine.arguments
    if let i = args.firstIndex(of: name), i + 1 < args.count { return args[i + 1] }
    return fallback
}

let rules = Int(option("--rules", "100")) ?? 100
let limits = Int(option("--limits", "10")) ?? 10
let mode = CommandLine.arguments.dropFirst().first ?? "micro"

@inline(never) func blackHole<T>(_ x: T) { withExtendedLifetime(x) {} }

func nanosPerCheck(_ engine: PolicyEngine, _ source: some AttributeSource, iterations: Int) -> Double {
    var now: UInt64 = 1_000_000_000
    for _ in 0..<min(iterations, 10_000) { blackHole(engine.check(source, now: now)); now += 1_000 }
    let start = DispatchTime.now().uptimeNanoseconds
    for _ in 0..<iterations {
        now += 1_000
        blackHole(engine.check(source, now: now))
    }
    return Double(DispatchTime.now().uptimeNanoseconds - start) / Double(iterations)
}

/// The YAML of `rules` AuthorizationPolicy rules and `limits` Local rate limits, arranged so that the
/// benchmark's plain `GET /` from `sourceCIDR` is allowed only by the very last ALLOW rule: every
/// rule is evaluated, and the two rate limits that select it (per source address) never refuse.
func benchmarkYAML(rules: Int, limits: Int, sourceCIDR: String) -> String {
    // PolicyBenchmark's rules (all but one) and limits, with the limits selecting every path by source
    // address, then the one ALLOW rule that admits the load generator's plain GET.
    let generic = PolicyBenchmark.benchmarkYAML(authorizationRules: max(2, rules) - 1, rateLimits: limits,
                                                selectedPath: "/*", firstDescriptor: "source.ip")
    return generic + "---\n" + """
    apiVersion: security.istio.io/v1
    kind: AuthorizationPolicy
    metadata: {name: bench-allow-last, namespace: bench}
    spec:
      action: ALLOW
      rules:
      - from: [{source: {ipBlocks: ["\(sourceCIDR)"]}}]
        to: [{operation: {methods: [GET, HEAD], paths: ["/*"]}}]
        when: [{key: "request.headers[host]", values: ["*"]}]

    """
}

switch mode {
case "yaml":
    print(benchmarkYAML(rules: rules, limits: limits, sourceCIDR: option("--source-cidr", "10.244.0.0/16")))
case "micro":
    let iterations = Int(option("--iterations", "2000000")) ?? 2_000_000
    let bundle = PolicyBenchmark.benchmarkConfig(authorizationRules: rules, rateLimits: limits)
    guard bundle.errors.isEmpty else { print("benchmark config has errors: \(bundle.errors)"); exit(1) }
    let engine = PolicyEngine.compile(bundle, lists: ValueListStore(), previous: nil)
    let request = PolicyBenchmark.request(authorizationRules: rules)
    guard case .done(let v) = engine.check(request, now: 1), v.isAllowed else { print("the benchmark request is not allowed"); exit(1) }
    // The same request as the proxy sees it: attributes read lazily from an HTTP head.
    let head = RequestAttributes.described(method: "GET", uri: request.requestPath ?? "/", headers: [("host", "bench:8080")] + request.headers,
                                           sourceAddress: request.sourceAddress?.description, workload: ProxySettings(),
                                           service: "bench.bench.svc.cluster.local", port: 8080, cluster: nil)
    let empty = nanosPerCheck(PolicyEngine.empty, request, iterations: iterations)
    let fixed = nanosPerCheck(engine, request, iterations: iterations)
    let lazy = nanosPerCheck(engine, head, iterations: iterations)
    print("rules \(rules) limits \(limits) iterations \(iterations)")
    print(String(format: "no-policy-ns %.1f", empty))
    print(String(format: "fixed-attributes-ns %.1f", fixed))
    print(String(format: "http-head-attributes-ns %.1f", lazy))
default:
    print("usage: interpose-policy-bench micro|yaml [--rules N] [--limits N] [--iterations N] [--source-cidr CIDR]")
    exit(64)
}
