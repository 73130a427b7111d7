import Crypto
import Foundation
import LifeboatCore
import Testing
import TestSupport

/// `HashingSource`: the whole file's SHA-256 from the reads a reader makes anyway, plus the
/// parts it skipped, whatever order it reads in.
@Suite struct HashingSourceTests {
  static let bytes: [UInt8] = (0..<300_000).map { UInt8(truncatingIfNeeded: $0 &* 2_654_435_761 >> 13) }
  static var expected: String { SHA256.hash(data: bytes).hexString }

  @Test func readsInAnyOrderGiveTheWholeFilesHash() async throws {
    let source = HashingSource(BytesSource(name: "f", bytes: Self.bytes))
    // A ZIP reader's pattern: the end first (central directory), then the entry from the start,
    // re-reads inside what was hashed, and never the tail.
    _ = try await source.read(at: 299_900, count: 100)
    _ = try await source.read(at: 0, count: 30)
    var seen = 0
    try await source.stream(from: 30, length: 200_000, chunkSize: 4096) { seen += $0.count }
    _ = try await source.read(at: 10, count: 50)
    try await source.stream(from: 150_000, length: 100_000, chunkSize: 7000) { _ in }
    #expect(seen == 200_000)
    let result = try await source.finish()
    #expect(result.sha256 == Self.expected)
    #expect(result.size == 300_000)
  }

  @Test func aReaderThatReadsNothingStillGetsTheHash() async throws {
    let source = HashingSource(BytesSource(name: "f", bytes: Self.bytes))
    #expect(try await source.finish().sha256 == Self.expected)
  }

  @Test func differentBytesGiveADifferentHash() async throws {
    var changed = Self.bytes
    changed[123_456] ^= 1
    let source = HashingSource(BytesSource(name: "f", bytes: changed))
    try await source.stream(from: 0, length: 300_000, chunkSize: 1 << 16) { _ in }
    #expect(try await source.finish().sha256 != Self.expected)
  }
}
