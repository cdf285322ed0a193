// Property checking with fixed seeds, shared by the test targets.
//
// Why not swift-property-based's `propertyCheck` with `.fixedSeed`: in version 2.0.1 a fixed
// seed runs the body once and records an issue when nothing fails (the trait reproduces one
// failure and is not meant to be committed), and without it every run draws a new random
// seed. `seededCheck` keeps the library's generators and makes every CI run check the same
// cases.

import PropertyBased
import TestSupport
import Testing

/// Runs `body` on `count` inputs drawn from `generator`, whose randomness is seeded from
/// `seed`, so every run checks the same cases.
///
/// `body` reports a failure with `#expect` (the run goes on) or by throwing, for example with
/// `#require` (the run stops there, and the seed and iteration that reproduce it are
/// recorded).
public func seededCheck<Value>(
    count: Int = 200, seed: UInt64, _ generator: Generator<Value, some Sequence>,
    sourceLocation: SourceLocation = #_sourceLocation, _ body: (Value) throws -> Void
) rethrows {
    var seeds = SplitMix64(seed: seed)
    var rng = Xoshiro(seed: (seeds.next(), seeds.next(), seeds.next(), seeds.next()))
    for iteration in 0..<count {
        let value = generator.run(using: &rng)
        do {
            try body(value)
        } catch {
            Issue.record(
                "failed at iteration \(iteration) of seed 0x\(String(seed, radix: 16))",
                sourceLocation: sourceLocation)
            throw error
        }
    }
}
