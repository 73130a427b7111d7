import Crypto
import Foundation
import LifeboatCore
import SystemZlib
import Testing

@Suite struct ChecksumTests {
  @Test func crc32MatchesZlib() {
    var generator = SystemRandomNumberGenerator()
    for size in [0, 1, 7, 64, 4096, 100_003] {
      let bytes = (0..<size).map { _ in UInt8.random(in: 0...255, using: &generator) }
      let expected = bytes.withUnsafeBufferPointer { UInt32(crc32(0, $0.baseAddress, uInt($0.count))) }
      #expect(CRC32.checksum(bytes) == expected, "size \(size)")
    }
    #expect(CRC32.checksum(Array("123456789".utf8)) == 0xCBF4_3926)
  }

  @Test func crc32cIsCastagnoliAsGoComputesIt() {
    #expect(CRC32C.checksum(Array("123456789".utf8)) == 0xE306_9283)
    #expect(CRC32C.checksum([]) == 0)
    var split = CRC32C()
    split.update(Array("1234".utf8)[...])
    split.update(Array("56789".utf8)[...])
    #expect(split.value == 0xE306_9283)
  }

  /// An etcd snapshot file: body plus SHA-256(body). Sizes follow etcd (body a multiple of 512).
  static func snapshotFile(pages: Int, seed: UInt8 = 7) -> [UInt8] {
    let body = (0..<(pages * 512)).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ Int(seed)) }
    return body + Array(SHA256.hash(data: body))
  }

  @Test(arguments: [1, 31, 32, 33, 1000, 65536])
  func digestChecksTrailerAcrossAnyChunking(chunk: Int) {
    let file = Self.snapshotFile(pages: 40)
    var digest = SnapshotDigest()
    var offset = 0
    while offset < file.count {
      let end = min(file.count, offset + chunk)
      digest.update(Array(file[offset..<end]))
      offset = end
    }
    let result = digest.finalize()
    #expect(result.trailer == .valid)
    #expect(result.size == UInt64(file.count))
    #expect(result.sha256 == SHA256.hash(data: file).hexString)
  }

  @Test func digestDetectsAFlippedByteAndAMissingTrailer() {
    var file = Self.snapshotFile(pages: 8)
    file[100] ^= 0x40
    var digest = SnapshotDigest()
    digest.update(file)
    #expect(digest.finalize().trailer == .mismatch)

    var truncated = SnapshotDigest()
    truncated.update(Array(Self.snapshotFile(pages: 8).dropLast(32)))
    #expect(truncated.finalize().trailer == .absent)
  }
}
