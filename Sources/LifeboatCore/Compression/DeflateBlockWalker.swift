/// Walks a complete raw Deflate stream (RFC 1951) block by block, decoding every symbol's code
/// but writing no output, to find where its final block starts and where the stream ends, to
/// the bit. `DeflateChunks` needs both to join independently compressed streams into one: no
/// Deflate library on the machine reports them (libdeflate compresses whole buffers only; zlib
/// and ISA-L stream, but at a ratio or speed `best` cannot use).
///
/// The walk also counts the bytes the stream decodes to and checks every distance against
/// them, so a stream that does not decode to exactly its input is refused, never joined.
public enum DeflateBlockWalker {
  public struct End: Sendable, Equatable {
    /// Bit offset (LSB-first within each byte) of the final block's BFINAL bit.
    public var finalBlockBit: Int
    /// Bit offset just past the final block's last code.
    public var endBit: Int
    /// How many bytes the stream decodes to.
    public var decodedSize: Int
  }

  /// Walks `data`, which must hold exactly one complete stream (at most 7 bits after its end).
  public static func walk(_ data: UnsafeRawBufferPointer) throws(LifeboatError) -> End {
    var walker = Walker(data)
    defer { walker.deallocate() }
    return try walker.run()
  }
}

private struct Walker {
  var bits: BitReader
  let literals = UnsafeMutableBufferPointer<UInt32>.allocate(capacity: 1 << 15)
  let distances = UnsafeMutableBufferPointer<UInt32>.allocate(capacity: 1 << 15)
  let lengthCodes = UnsafeMutableBufferPointer<UInt32>.allocate(capacity: 1 << 7)
  var lengths = [UInt8](repeating: 0, count: 288 + 32)

  init(_ data: UnsafeRawBufferPointer) { bits = BitReader(data) }

  func deallocate() {
    literals.deallocate()
    distances.deallocate()
    lengthCodes.deallocate()
  }

  mutating func run() throws(LifeboatError) -> DeflateBlockWalker.End {
    var decoded = 0
    while true {
      let header = bits.position
      try bits.ensure(3)
      let final = bits.take(1) == 1
      switch bits.take(2) {
      case 0: decoded += try storedBlock()
      case 1:
        let literalBits = try Self.build(Self.fixedLiteralLengths, Self.literalPayload, into: literals)
        let distanceBits = try Self.build(Self.fixedDistanceLengths, Self.distancePayload, into: distances)
        try codedBlock(literalBits: literalBits, distanceBits: distanceBits, decoded: &decoded)
      case 2:
        let (literalBits, distanceBits) = try dynamicHeader()
        try codedBlock(literalBits: literalBits, distanceBits: distanceBits, decoded: &decoded)
      default: throw Self.invalid("a block of the reserved type 3")
      }
      if final {
        let end = bits.position
        guard end <= bits.count * 8, bits.count * 8 - end < 8 else {
          throw Self.invalid(end > bits.count * 8 ? "the stream is cut short" : "bytes follow the final block")
        }
        return .init(finalBlockBit: header, endBit: end, decodedSize: decoded)
      }
    }
  }

  private mutating func storedBlock() throws(LifeboatError) -> Int {
    bits.alignToByte()
    try bits.ensure(32)
    let length = Int(bits.take(16))
    let complement = Int(bits.take(16))
    guard length ^ 0xFFFF == complement else { throw Self.invalid("a stored block's length check fails") }
    try bits.skipBytes(length)
    return length
  }

  private mutating func dynamicHeader() throws(LifeboatError) -> (Int, Int) {
    try bits.ensure(14)
    let literalCount = Int(bits.take(5)) + 257
    let distanceCount = Int(bits.take(5)) + 1
    let codeLengthCount = Int(bits.take(4)) + 4
    guard literalCount <= 286, distanceCount <= 30 else { throw Self.invalid("a block header counts too many codes") }
    var codeLengthLengths = [UInt8](repeating: 0, count: 19)
    for i in 0..<codeLengthCount {
      try bits.ensure(3)
      codeLengthLengths[Self.codeLengthOrder[i]] = UInt8(bits.take(3))
    }
    let codeLengthBits = try Self.build(codeLengthLengths[...], Self.symbolPayload, into: lengthCodes)
    let total = literalCount + distanceCount
    var i = 0
    while i < total {
      try bits.ensure(7 + 7)
      let symbol = Int(try bits.decode(lengthCodes, tableBits: codeLengthBits) >> 16)
      var repeatCount = 1
      var value = UInt8(truncatingIfNeeded: symbol)
      switch symbol {
      case 0...15: break
      case 16:
        guard i > 0 else { throw Self.invalid("a length repeat with nothing before it") }
        value = lengths[i - 1]
        repeatCount = 3 + Int(bits.take(2))
      case 17:
        value = 0
        repeatCount = 3 + Int(bits.take(3))
      default:
        value = 0
        repeatCount = 11 + Int(bits.take(7))
      }
      guard i + repeatCount <= total else { throw Self.invalid("code lengths run past their count") }
      for j in i..<(i + repeatCount) { lengths[j] = value }
      i += repeatCount
    }
    guard lengths[256] != 0 else { throw Self.invalid("a block without an end-of-block code") }
    let literalBits = try Self.build(lengths[0..<literalCount], Self.literalPayload, into: literals)
    let distanceBits = try Self.build(lengths[literalCount..<total], Self.distancePayload, into: distances)
    return (literalBits, distanceBits)
  }

  private mutating func codedBlock(literalBits: Int, distanceBits: Int, decoded: inout Int) throws(LifeboatError) {
    // The reader in a local, so the loop keeps its bit buffer in registers.
    var bits = self.bits
    defer { self.bits = bits }
    var count = decoded
    defer { decoded = count }
    while true {
      // 15 + 5 bits of length, 15 + 13 of distance: one refill covers a whole match.
      if bits.available < 48 { try bits.refill() }
      let entry = try bits.decode(literals, tableBits: literalBits)
      let kind = entry & Self.kindMask
      if kind == Self.literal {
        count += 1
        continue
      }
      guard kind == Self.match else {
        if kind == Self.endOfBlock { return }
        throw Self.invalid("an invalid length code")
      }
      let length = Int(entry >> 16) + Int(bits.take(Int(entry >> 4 & 15)))
      let distanceEntry = try bits.decode(distances, tableBits: distanceBits)
      guard distanceEntry & Self.kindMask == Self.match else { throw Self.invalid("an invalid distance code") }
      let distance = Int(distanceEntry >> 16) + Int(bits.take(Int(distanceEntry >> 4 & 15)))
      guard distance <= count else { throw Self.invalid("a distance reaching before the stream's start") }
      count += length
    }
  }

  /// Fills `table` (indexed by the next `tableBits` bits, LSB-first) with `payload[symbol] |
  /// length` for the canonical Huffman code with these lengths; 0 where no code matches.
  /// Returns tableBits.
  private static func build(
    _ lengths: ArraySlice<UInt8>, _ payload: [UInt32], into table: UnsafeMutableBufferPointer<UInt32>
  ) throws(LifeboatError) -> Int {
    var counts = [Int](repeating: 0, count: 16)
    for length in lengths { counts[Int(length)] += 1 }
    counts[0] = 0
    let maxLength = counts.lastIndex(where: { $0 > 0 }) ?? 0
    let tableBits = max(maxLength, 1)
    var left = 1
    for length in 1...15 {
      left = left * 2 - counts[length]
      guard left >= 0 else { throw invalid("an over-subscribed Huffman code") }
    }
    var next = [Int](repeating: 0, count: 16)
    var code = 0
    for length in 1...15 {
      code = (code + counts[length - 1]) << 1
      next[length] = code
    }
    let size = 1 << tableBits
    table.baseAddress!.update(repeating: 0, count: size)
    for (offset, length) in lengths.enumerated() where length > 0 {
      let n = Int(length)
      var reversed = 0
      var value = next[n]
      next[n] += 1
      for _ in 0..<n {
        reversed = reversed << 1 | value & 1
        value >>= 1
      }
      let entry = payload[offset] | UInt32(n)
      var index = reversed
      while index < size {
        table[index] = entry
        index += 1 << n
      }
    }
    return tableBits
  }

  static func invalid(_ what: String) -> LifeboatError { .verification("Deflate stream is damaged: \(what)") }

  // A table entry: bits 0-3 the code's length (0: no code), 4-7 the extra bits that follow it,
  // 8-9 its kind, 16-31 the literal, code-length symbol, or the base of a length or distance.
  static let kindMask: UInt32 = 3 << 8
  static let literal: UInt32 = 0 << 8
  static let match: UInt32 = 1 << 8
  static let endOfBlock: UInt32 = 2 << 8
  static let invalidCode: UInt32 = 3 << 8
  static let symbolPayload: [UInt32] = (0..<19).map { UInt32($0) << 16 }
  static let literalPayload: [UInt32] = (0..<288).map { symbol in
    switch symbol {
    case 0..<256: UInt32(symbol) << 16 | literal
    case 256: endOfBlock
    case 257...285: UInt32(lengthBase[symbol - 257]) << 16 | UInt32(lengthExtra[symbol - 257]) << 4 | match
    default: invalidCode
    }
  }
  static let distancePayload: [UInt32] = (0..<32).map { code in
    code < 30 ? UInt32(distanceBase[code]) << 16 | UInt32(distanceExtra[code]) << 4 | match : invalidCode
  }
  static let codeLengthOrder = [16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15]
  static let lengthBase: [UInt16] = [
    3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 258,
  ]
  static let lengthExtra: [UInt8] = [0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0]
  static let distanceBase: [UInt16] = [
    1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769, 1025, 1537, 2049, 3073, 4097, 6145,
    8193, 12289, 16385, 24577,
  ]
  static let distanceExtra: [UInt8] = [0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13]
  static let fixedLiteralLengths: ArraySlice<UInt8> =
    (Array(repeating: 8, count: 144) + Array(repeating: 9, count: 112) + Array(repeating: 7, count: 24)
    + Array(repeating: 8, count: 8))[...]
  static let fixedDistanceLengths: ArraySlice<UInt8> = Array(repeating: 5, count: 32)[...]
}

/// LSB-first bits of a byte buffer, up to 64 at a time. Past the end it reads zeros, so a cut
/// stream is found by `position` passing the end, never by reading outside the buffer.
private struct BitReader {
  let base: UnsafePointer<UInt8>?
  let count: Int
  private(set) var next = 0
  private(set) var buffer: UInt64 = 0
  private(set) var available = 0

  init(_ data: UnsafeRawBufferPointer) {
    base = data.baseAddress?.assumingMemoryBound(to: UInt8.self)
    count = data.count
  }

  /// The bit offset of the next unread bit.
  var position: Int { next * 8 - available }

  /// Tops the buffer up to at least 56 bits.
  @inline(__always) mutating func refill() throws(LifeboatError) {
    if next + 8 <= count {
      let word = UInt64(littleEndian: UnsafeRawPointer(base! + next).loadUnaligned(as: UInt64.self))
      buffer |= word << UInt64(available)
      next += (63 - available) >> 3
      available |= 56
      return
    }
    while available <= 56 {
      // Zeros past the end; a stream that needs more than a few of them is cut short.
      guard next < count + 16 else { throw Walker.invalid("the stream is cut short") }
      if next < count { buffer |= UInt64(base![next]) << UInt64(available) }
      next += 1
      available += 8
    }
  }

  @inline(__always) mutating func ensure(_ n: Int) throws(LifeboatError) {
    if available < n { try refill() }
  }

  /// The next `n` (0...32) bits; the caller has made sure they are in the buffer.
  @inline(__always) mutating func take(_ n: Int) -> UInt32 {
    let value = UInt32(truncatingIfNeeded: buffer & ((1 << UInt64(n)) &- 1))
    buffer >>= UInt64(n)
    available -= n
    return value
  }

  /// Decodes one code with a table from `Walker.build` and returns its entry; needs `tableBits`
  /// bits in the buffer.
  @inline(__always) mutating func decode(_ table: UnsafeMutableBufferPointer<UInt32>, tableBits: Int) throws(LifeboatError) -> UInt32 {
    let entry = table[Int(truncatingIfNeeded: buffer & ((1 << UInt64(tableBits)) &- 1))]
    let length = Int(entry & 15)
    guard length != 0 else { throw Walker.invalid("a bit pattern no code matches") }
    buffer >>= UInt64(length)
    available -= length
    return entry
  }

  mutating func alignToByte() {
    let drop = available & 7
    buffer >>= UInt64(drop)
    available -= drop
  }

  /// Skips `n` whole bytes; the reader is byte-aligned.
  mutating func skipBytes(_ n: Int) throws(LifeboatError) {
    let target = position / 8 + n
    guard target <= count else { throw Walker.invalid("the stream is cut short") }
    next = target
    buffer = 0
    available = 0
  }
}
