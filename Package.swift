// swift-tools-version:6.0
import PackageDescription

/// The modules every request runs through: in release builds without the run-time exclusivity checks
/// (they cost about 2 % of the proxy's CPU per request; debug builds and tests keep them).
let requestPathSettings: [SwiftSetting] = [.unsafeFlags(["-enforce-exclusivity=unchecked"], .when(configuration: .release))]

let package = Package(
    name: "Interpose",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "interpose-init", targets: ["interpose-init"]),
        .executable(name: "interpose-netcheck", targets: ["interpose-netcheck"]),
        .executable(name: "interpose", targets: ["interpose"]),
        .executable(name: "interpose-policy-bench", targets: ["interpose-policy-bench"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.0.0"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.80.0"),
        .package(url: "https://github.com/apple/swift-nio-http2", from: "1.46.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.0.0"),
        .package(url: "https://github.com/apple/swift-atomics", from: "1.2.0"),
    ],
    targets: [
        // Plain C shim: the only place that includes <linux/netfilter*.h> (see docs/architecture.md).
        // Links Debian's libnetfilter_queue, libmnl and libcap (libnetfilter-queue-dev, libmnl-dev, libcap-dev).
        .target(
            name: "CInterposeLinux",
            linkerSettings: [.linkedLibrary("netfilter_queue"), .linkedLibrary("mnl"), .linkedLibrary("cap")]
        ),
        // The only module that makes syscalls or runs external commands.
        .target(name: "InterposeKernel", dependencies: ["CInterposeLinux", .product(name: "NIOCore", package: "swift-nio")]),
        // Istio and Interpose resources: YAML decoding and validation with field paths.
        .target(name: "InterposeConfig", dependencies: ["InterposeCapture", .product(name: "Yams", package: "Yams")]),
        // The flow engine: FlowPolicy decisions (pure), the NFQUEUE read loop behind a kernel protocol, the watchdog.
        .target(
            name: "InterposeFlow",
            dependencies: [
                "InterposeCapture", "InterposeConfig", "InterposeKernel",
                .product(name: "Prometheus", package: "swift-prometheus"),
            ]
        ),
        // Pure routing decisions: host and route matching, weights, load balancing, the compiled table.
        .target(name: "InterposeRouting", dependencies: ["InterposeConfig", "InterposeCapture"], swiftSettings: requestPathSettings),
        // HTTP/1 message decoding and encoding for the proxy's request path (pure: bytes in, parts out).
        .target(
            name: "InterposeHTTP1",
            dependencies: [.product(name: "NIOCore", package: "swift-nio"), .product(name: "NIOHTTP1", package: "swift-nio")],
            swiftSettings: requestPathSettings
        ),
        // The data path on SwiftNIO: listeners, protocol detection, TCP relay, HTTP/1.1 proxy, pools, admin.
        // Policy and quota per request (Mixer in process): AuthorizationPolicy, ValueList, RateLimitPolicy. Pure.
        .target(name: "InterposePolicy", dependencies: ["InterposeConfig", "InterposeFlow", "InterposeCapture"]),
        // A small Redis client on SwiftNIO (RESP, pipelining, timeouts, reconnect, circuit breaker) and the
        // GCRA shared quota script. No Redis client package is available here.
        .target(
            name: "InterposeRedis",
            dependencies: [
                "InterposePolicy",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
            ]
        ),
        .target(
            name: "InterposeProxy",
            dependencies: [
                "InterposeCapture", "InterposeConfig", "InterposeRouting", "InterposeKernel", "InterposeFlow", "InterposePolicy", "InterposeRedis", "InterposeHTTP1",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOHTTP2", package: "swift-nio-http2"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Atomics", package: "swift-atomics"),
            ],
            swiftSettings: requestPathSettings
        ),
        .executableTarget(
            name: "interpose",
            dependencies: [
                "InterposeProxy", "InterposeConfig", "InterposeRouting", "InterposeKernel", "InterposeFlow", "InterposeCapture", "InterposePolicy",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        // bench/policy.sh: the per-request cost of the policy check (not shipped).
        .executableTarget(
            name: "interpose-policy-bench",
            dependencies: ["InterposePolicy", "InterposeConfig", "InterposeFlow", "InterposeProxy"]
        ),
        // Pure capture planning: options -> ruleset, cleanup plan, verify diff. No I/O.
        .target(name: "InterposeCapture"),
        // apply / cleanup / verify / probe: runs a capture plan through InterposeKernel.
        .target(
            name: "InterposeCaptureRuntime",
            dependencies: [
                "InterposeCapture", "InterposeKernel",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .executableTarget(
            name: "interpose-init",
            dependencies: [
                "InterposeCaptureRuntime", "InterposeCapture", "InterposeKernel",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .executableTarget(
            name: "interpose-netcheck",
            dependencies: [
                "InterposeKernel", "InterposeRouting",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .testTarget(
            name: "InterposeCaptureTests",
            dependencies: ["InterposeCapture", "InterposeCaptureRuntime", "InterposeKernel"],
            exclude: ["Golden"]
        ),
        .testTarget(name: "InterposeConfigTests", dependencies: ["InterposeConfig"]),
        .testTarget(name: "InterposeFlowTests", dependencies: ["InterposeFlow", "InterposeConfig", "InterposeCapture", .product(name: "Prometheus", package: "swift-prometheus")]),
        .testTarget(name: "InterposePolicyTests", dependencies: ["InterposePolicy", "InterposeConfig", "InterposeFlow"]),
        .testTarget(
            name: "InterposeRedisTests",
            dependencies: ["InterposeRedis", "InterposePolicy", "InterposeKernel", .product(name: "NIOPosix", package: "swift-nio")]
        ),
        .testTarget(name: "InterposeRoutingTests", dependencies: ["InterposeRouting", "InterposeConfig"]),
        .testTarget(name: "InterposeHTTP1Tests", dependencies: ["InterposeHTTP1", .product(name: "NIOCore", package: "swift-nio"), .product(name: "NIOHTTP1", package: "swift-nio")]),
        .testTarget(
            name: "IntegrationTests",
            dependencies: ["InterposeKernel", "InterposeCapture"]
        ),
    ],
    swiftLanguageModes: [.v6]
)
