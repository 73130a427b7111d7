import Foundation
import LifeboatCore
import SystemZlib
import Testing

/// `best` joins libdeflate chunks into one Deflate stream; zlib (an independent decoder) reads it back.
@Suite struct DeflateChunksTests {
  /// Inflates a raw Deflate stream with zlib; fails unless the stream ends exactly at its last byte.
  static func zlibInflate(_ stream: [UInt8]) throws -> [UInt8] {
    var z = z_stream()
    #expect(inflateInit2_(&z, -15, zlibVersion(), Int32(MemoryLayout<z_stream>.size)) == Z_OK)
    defer { inflateEnd(&z) }
    var output: [UInt8] = []
    var scratch = [UInt8](repeating: 0, count: 1 << 16)
    var status: Int32 = Z_OK
    var input = stream
    input.withUnsafeMutableBufferPointer { buffer in
      z.next_in = buffer.baseAddress
      z.avail_in = uInt(buffer.count)
      repeat {
        scratch.withUnsafeMutableBufferPointer { out in
          z.next_out = out.baseAddress
          z.avail_out = uInt(out.count)
          status = inflate(&z, Z_NO_FLUSH)
          output.append(contentsOf: out[0..<(out.count - Int(z.avail_out))])
        }
      } while status == Z_OK
    }
    guard status == Z_STREAM_END else { throw LifeboatError.verification("zlib: status \(status)") }
    #expect(z.avail_in == 0, "bytes after the stream's end")
    return output
  }

  static func compressInChunks(_ input: [UInt8], cuts: [Int], level: Int32 = 6) throws -> [UInt8] {
    var stream: [UInt8] = []
    var start = 0
    for (i, cut) in (cuts + [input.count]).enumerated() {
      stream += try DeflateChunks.compress(Array(input[start..<cut]), level: level, last: i == cuts.count)
      start = cut
    }
    return stream
  }

  @Test(arguments: [1, 6, 12] as [Int32])
  func joinedChunksAreOneStreamForZlib(level: Int32) throws {
    let input = CompressionTests.sample(1_500_000)
    // Chunk ends at every bit offset modulo 8 show up across these cuts, and an empty last chunk.
    let cuts = [0, 1, 65_535, 65_536, 300_001, 700_000, 1_200_017, 1_500_000]
    let stream = try Self.compressInChunks(input, cuts: cuts, level: level)
    #expect(try Self.zlibInflate(stream) == input)
    #expect(try CompressionTests.isalInflate(stream) == input)
  }

  @Test func everyEndingBitOffsetJoins() throws {
    // Small random-length chunks of mixed data: the final block ends at all 8 bit offsets.
    var generator = SystemRandomNumberGenerator()
    var offsets = Set<Int>()
    for _ in 0..<60 {
      let size = Int.random(in: 1...5_000, using: &generator)
      let input = CompressionTests.sample(size + 9_000).suffix(size).map { $0 }
      let alone = try DeflateChunks.compress(input, level: 6, last: true)
      let end = try alone.withBytes { (b) throws(LifeboatError) in try DeflateBlockWalker.walk(b) }
      #expect(end.decodedSize == size)
      #expect(end.endBit > alone.count * 8 - 8 && end.endBit <= alone.count * 8)
      offsets.insert(end.endBit & 7)
      let twice = try Self.compressInChunks(input + input, cuts: [size])
      #expect(try Self.zlibInflate(twice) == input + input)
    }
    #expect(offsets.count >= 6, "the cases hit only bit offsets \(offsets.sorted())")
  }

  @Test(arguments: [1, 2, 4])
  func parallelDeflaterStreamsAcrossChunks(workers: Int) throws {
    // Exactly two chunks and a few bytes: the last chunk is tiny; then exactly two (empty last).
    for size in [2 * ParallelDeflater.chunkSize + 3, 2 * ParallelDeflater.chunkSize, 5 * ParallelDeflater.chunkSize / 2] {
      let input = CompressionTests.sample(size)
      let deflater = ParallelDeflater(workers: workers)
      var stream: [UInt8] = []
      var offset = 0
      while offset < input.count {
        let end = min(input.count, offset + 700_001)
        try Array(input[offset..<end]).withBytes { (b) throws(LifeboatError) in try deflater.compress(b, finish: false, into: &stream) }
        offset = end
      }
      try deflater.compress(UnsafeRawBufferPointer(start: nil, count: 0), finish: true, into: &stream)
      #expect(try Self.zlibInflate(stream) == input)
    }
  }

  @Test func emptyInputIsAnEmptyStream() throws {
    let deflater = ParallelDeflater()
    var stream: [UInt8] = []
    try deflater.compress(UnsafeRawBufferPointer(start: nil, count: 0), finish: true, into: &stream)
    #expect(try Self.zlibInflate(stream) == [])
  }

  @Test func damagedStreamsAreRefused() throws {
    let input = CompressionTests.sample(200_000)
    let stream = try DeflateChunks.compress(input, level: 6, last: true)
    func walk(_ bytes: [UInt8]) throws(LifeboatError) { _ = try bytes.withBytes { (b) throws(LifeboatError) in try DeflateBlockWalker.walk(b) } }
    // Cut short, at the end and in the middle.
    #expect(throws: LifeboatError.self) { try walk(Array(stream.dropLast())) }
    #expect(throws: LifeboatError.self) { try walk(Array(stream.prefix(stream.count / 2))) }
    // Bytes after the final block.
    #expect(throws: LifeboatError.self) { try walk(stream + [0]) }
    // The reserved block type 3, and a stored block whose length check fails.
    #expect(throws: LifeboatError.self) { try walk([0x07, 0, 0]) }
    #expect(throws: LifeboatError.self) { try walk([0x01, 0x05, 0x00, 0x00, 0x00, 1, 2, 3, 4, 5]) }
    // A complete stored block is fine, and so is a lone empty static block.
    #expect(throws: Never.self) { try walk([0x01, 0x03, 0x00, 0xFC, 0xFF, 1, 2, 3]) }
    #expect(throws: Never.self) { try walk([0x03, 0x00]) }
    // A stream with its final bit cleared has no end.
    var open = stream
    let end = try stream.withBytes { (b) throws(LifeboatError) in try DeflateBlockWalker.walk(b) }
    open[end.finalBlockBit >> 3] ^= UInt8(1) << UInt8(end.finalBlockBit & 7)
    #expect(throws: LifeboatError.self) { try walk(open) }
  }
}
