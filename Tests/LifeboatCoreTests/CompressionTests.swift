import Foundation
import LifeboatCore
import Testing

@Suite struct CompressionTests {
  static func sample(_ size: Int) -> [UInt8] {
    var state: UInt64 = 0x9E37_79B9_7F4A_7C15
    var out = [UInt8]()
    out.reserveCapacity(size)
    while out.count < size {
      state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
      // Half text-like, half random: compressible but not trivially.
      if (out.count / 4096) % 2 == 0 {
        out.append(contentsOf: Array("{\"kind\":\"ConfigMap\",\"n\":\(state % 1000)}".utf8))
      } else {
        out.append(UInt8(truncatingIfNeeded: state >> 33))
      }
    }
    return Array(out.prefix(size))
  }

  @Test(arguments: Compression.allCases)
  func roundTripsThroughISALInflate(_ compression: Compression) throws {
    let input = Self.sample(3 << 20)
    let compressor = compression.makeCompressor()
    var compressed: [UInt8] = []
    var offset = 0
    while offset < input.count {
      let end = min(input.count, offset + 100_000)
      try Array(input[offset..<end]).withBytes { (b) throws(LifeboatError) in try compressor.compress(b, finish: false, into: &compressed) }
      offset = end
    }
    try compressor.compress(UnsafeRawBufferPointer(start: nil, count: 0), finish: true, into: &compressed)
    if compression == .none {
      #expect(compressed == input)
      return
    }
    #expect(compressed.count < input.count)
    #expect(try Self.isalInflate(compressed) == input)
  }

  /// Inflates a whole raw Deflate stream with ISA-L; expects the stream to be finished.
  static func isalInflate(_ stream: [UInt8]) throws -> [UInt8] {
    let inflater = ISALInflater()
    var output: [UInt8] = []
    try stream.withBytes { (b) throws(LifeboatError) in try inflater.inflate(b) { output.append(contentsOf: $0) } }
    #expect(inflater.finished)
    return output
  }

  @Test func bestIsSmallerThanFast() throws {
    let input = Self.sample(1 << 20)
    func size(_ c: Compression) throws -> Int {
      var out: [UInt8] = []
      try input.withBytes { (b) throws(LifeboatError) in try c.makeCompressor().compress(b, finish: true, into: &out) }
      return out.count
    }
    #expect(try size(.best) <= size(.fast))
  }

  @Test func corruptDeflateDataIsAVerificationError() throws {
    let inflater = ISALInflater()
    let garbage: [UInt8] = [0xff, 0xff, 0xff, 0xff, 0x00, 0x12, 0x34]
    #expect(throws: LifeboatError.self) {
      try garbage.withBytes { (b) throws(LifeboatError) in try inflater.inflate(b) { _ in } }
    }
  }
}
