import Testing
import InterposeRouting

/// Reference values from the `xxhash` Python package (XXH64), seeds 0 and 1.
@Suite("Balancing: xxHash64")
struct BalancingHashTests {
    static let vectors: [(String, UInt64, UInt64)] = [
        ("", 0xEF46_DB37_51D8_E999, 0xD5AF_BA13_36A3_BE4B),
        ("a", 0xD24E_C4F1_A98C_6E5B, 0xDEC2_BC81_C3CD_46C6),
        ("abc", 0x44BC_2CF5_AD77_0999, 0xBEA9_CA81_9932_8908),
        ("abcd", 0xDE03_27B0_D25D_92CC, 0xF5DC_BD6D_EE3C_9553),
        ("hello world", 0x45AB_6734_B21E_6968, 0xB01B_03C5_241F_B7C7),
        ("10.0.0.1:8080", 0xCB97_2177_068E_B685, 0x0DFC_E9EF_D349_B428),
        ("10.0.0.1:8080_0", 0x23A2_9AE7_75DF_D4A3, 0x1297_19CB_86BA_9503),
        ("0123456789abcdef0123456789abcde", 0x1FDF_C63F_EBAC_FDE7, 0xE2CF_275E_22C7_4F2D),
        ("0123456789abcdef0123456789abcdef", 0x642A_9495_8E71_E6C5, 0x048B_8B58_0878_A4A4),
        ("0123456789abcdef0123456789abcdef0", 0xE876_84F0_8D6D_0816, 0x722E_041F_63BF_8817),
        ("The quick brown fox jumps over the lazy dog", 0x0B24_2D36_1FDA_71BC, 0xDF50_91B6_DAD2_C6DB),
    ]

    @Test func knownVectorsSeedZero() {
        for (input, seed0, _) in Self.vectors {
            #expect(stableHash64(input) == seed0, "xxh64(\"\(input)\")")
            #expect(xxHash64(input, seed: 0) == seed0)
            #expect(stableHash64(Array(input.utf8)) == seed0)
        }
    }

    @Test func knownVectorsSeedOne() {
        for (input, _, seed1) in Self.vectors {
            #expect(xxHash64(input, seed: 1) == seed1, "xxh64(\"\(input)\", seed 1)")
        }
    }

    @Test func longInputAllByteValues() {
        let bytes = (0...255).map { UInt8($0) }
        #expect(stableHash64(bytes) == 0x1FAC_BE84_06CD_904B)
        #expect(xxHash64(bytes, seed: 1) == 0xBEEC_1EB0_6D6A_56F7)
        // A non-contiguous sequence takes the copying path and must agree.
        #expect(stableHash64(bytes.lazy.map { $0 }) == 0x1FAC_BE84_06CD_904B)
    }

    @Test func nonASCIIStringHashesItsUTF8() {
        let s = "café-ü-日本"
        #expect(stableHash64(s) == stableHash64(Array(s.utf8)))
    }
}
