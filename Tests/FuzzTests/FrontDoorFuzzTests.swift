import Foundation
import FrontDoorFuzz
import Testing
import WardenTestSupport

/// The front door's fuzz target run deterministically in the suite (scripts/fuzz.sh runs it
/// under libFuzzer): the committed corpus (tests/fuzz/corpus) and the seeds, then mutations of
/// them from a fixed seed for a time budget (WARDEN_FUZZ_SECONDS, default 10). A crash or a
/// precondition in the target fails the run; each input is bounded by the suite's time limit.
@Suite(.serialized, .timeLimit(.minutes(3))) struct FrontDoorFuzzTests {
    static var corpusDirectory: String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("tests/fuzz/corpus").path
    }

    @Test func everyTaskMethodOfBothServicesIsATarget() throws {
        let frontDoor = try FrontDoor()
        #expect(frontDoor.methodCount == 34, "17 Task methods × task.v2 and task.v3")
    }

    @Test func theCorpusSeedsAndSeededMutationsRunClean() throws {
        let frontDoor = try FrontDoor()
        let seeds = try frontDoor.seeds()
        // WARDEN_FUZZ_WRITE_SEEDS=1 refreshes the committed seeds (the libFuzzer corpus grows on top).
        if ProcessInfo.processInfo.environment["WARDEN_FUZZ_WRITE_SEEDS"] == "1" {
            try FileManager.default.createDirectory(atPath: Self.corpusDirectory, withIntermediateDirectories: true)
            for seed in seeds {
                try Data(seed.bytes).write(to: URL(fileURLWithPath: Self.corpusDirectory + "/seed-" + seed.name))
            }
        }
        let files = (try? FileManager.default.contentsOfDirectory(atPath: Self.corpusDirectory)) ?? []
        #expect(files.count >= seeds.count, "the corpus is committed in tests/fuzz/corpus")
        let corpus = files.sorted().compactMap { FileManager.default.contents(atPath: Self.corpusDirectory + "/" + $0) }
            .map { [UInt8]($0) } + seeds.map(\.bytes)

        var tally = FrontDoor.Tally()
        for input in corpus { frontDoor.run(input, into: &tally) }
        #expect(tally.decodedTaskRequests >= 34, "every method's seed decodes: \(tally)")

        let budget = Duration.seconds(Int(ProcessInfo.processInfo.environment["WARDEN_FUZZ_SECONDS"] ?? "") ?? 10)
        var random = SplitMix64(seed: 0x5741_5244_454e_4655)
        let started = ContinuousClock.now
        var executions = 0
        while ContinuousClock.now - started < budget {
            for _ in 0..<200 {
                frontDoor.run(Self.mutate(corpus[random.below(corpus.count)], corpus: corpus, random: &random), into: &tally)
                executions += 1
            }
        }
        print("front door fuzz: \(executions) mutated inputs in \(budget), 0 crashes; \(tally)")
        #expect(executions > 1000)
    }

    /// One mutation of `input`, in the ways that matter for a length-prefixed protocol.
    static func mutate(_ input: [UInt8], corpus: [[UInt8]], random: inout SplitMix64) -> [UInt8] {
        var bytes = input
        for _ in 0...random.below(4) {
            switch random.below(7) {
            case 0 where !bytes.isEmpty:  // flip a bit
                let index = random.below(bytes.count)
                bytes[index] ^= UInt8(1 << random.below(8))
            case 1 where !bytes.isEmpty:  // set a byte
                bytes[random.below(bytes.count)] = UInt8(truncatingIfNeeded: random.next())
            case 2:  // insert random bytes
                let at = random.below(bytes.count + 1)
                bytes.insert(contentsOf: (0..<random.below(16) + 1).map { _ in UInt8(truncatingIfNeeded: random.next()) }, at: at)
            case 3 where bytes.count > 2:  // cut a range
                let from = random.below(bytes.count)
                bytes.removeSubrange(from..<min(bytes.count, from + random.below(32) + 1))
            case 4 where bytes.count >= 6:  // an interesting 32-bit value (frame lengths, stream ids)
                let values: [UInt32] = [0, 1, 0x7f, 0xff, 0x7fff_ffff, 0xffff_ffff, 4 << 20, (4 << 20) + 1, 10]
                let value = values[random.below(values.count)]
                let at = random.below(bytes.count - 3)
                for k in 0..<4 { bytes[at + k] = UInt8(truncatingIfNeeded: value >> (24 - 8 * UInt32(k))) }
            case 5:  // splice with another input
                let other = corpus[random.below(corpus.count)]
                bytes = Array(bytes.prefix(random.below(bytes.count + 1))) + other.suffix(random.below(other.count + 1))
            default:  // repeat a range
                guard !bytes.isEmpty else { break }
                let from = random.below(bytes.count)
                bytes += bytes[from..<min(bytes.count, from + random.below(64) + 1)]
            }
        }
        return bytes
    }
}
