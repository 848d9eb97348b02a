/// Uniform choice of one index among those not excluded, without allocating.
///
/// A few rejection-sampling draws first (cheap when few endpoints are excluded), then an exact
/// count-and-select pass. Both phases are uniform over the non-excluded indices, so the mixture is
/// too. `excluding` must give the same answer for the same index during one call.
enum UniformIndex {
    static let rejectionTries = 4

    static func pick<R: RandomNumberGenerator>(
        count: Int, excluding: (Int) -> Bool, using rng: inout R
    ) -> Int? {
        guard count > 0 else { return nil }
        for _ in 0..<rejectionTries {
            let i = Int.random(in: 0..<count, using: &rng)
            if !excluding(i) { return i }
        }
        var eligible = 0
        for i in 0..<count where !excluding(i) { eligible += 1 }
        guard eligible > 0 else { return nil }
        var k = Int.random(in: 0..<eligible, using: &rng)
        for i in 0..<count where !excluding(i) {
            if k == 0 { return i }
            k -= 1
        }
        return nil
    }

    /// True when at least one index in `0..<count` is not excluded.
    static func anyEligible(count: Int, excluding: (Int) -> Bool) -> Bool {
        for i in 0..<count where !excluding(i) { return true }
        return false
    }
}
