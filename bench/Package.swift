// swift-tools-version: 6.2
// Benchmarks for VTEP Gateway, kept in their own package so the main package's build and
// tests do not pull in the benchmark harness. Run with `make bench` from the repository root.
import PackageDescription

// A path dependency's identity is its directory's name, which depends on where the repository
// was cloned; derive it instead of hard-coding it.
let root = String(Context.packageDirectory.split(separator: "/").dropLast().last ?? "main")

let package = Package(
    name: "vtep-gateway-bench",
    platforms: [.macOS(.v13)],
    dependencies: [
        .package(path: ".."),
        .package(
            url: "https://github.com/ordo-one/benchmark.git", from: "1.38.1",
            traits: ["MallocInterposer"]),
    ],
    targets: [
        .executableTarget(
            name: "ForwardingBenchmarks",
            dependencies: [
                .product(name: "Benchmark", package: "benchmark"),
                .product(name: "Packet", package: root),
                .product(name: "Forwarding", package: root),
            ],
            path: "Benchmarks/Forwarding",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        )
    ]
)
