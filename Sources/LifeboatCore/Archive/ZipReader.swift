/// One entry of a ZIP archive's central directory.
public struct ZipEntry: Sendable, Equatable {
  public var path: String
  public var method: UInt16
  public var flags: UInt16
  public var crc32: UInt32
  public var compressedSize: UInt64
  public var uncompressedSize: UInt64
  public var localHeaderOffset: UInt64

  /// The last component of the path: entries are matched by it, so `/backup/x` and
  /// `backup/x` are the same entry.
  public var fileName: Substring {
    path.split(separator: "/", omittingEmptySubsequences: true).last ?? Substring(path)
  }

  public var isDirectory: Bool { path.hasSuffix("/") }

  public init(
    path: String, method: UInt16, flags: UInt16, crc32: UInt32, compressedSize: UInt64, uncompressedSize: UInt64,
    localHeaderOffset: UInt64
  ) {
    self.path = path
    self.method = method
    self.flags = flags
    self.crc32 = crc32
    self.compressedSize = compressedSize
    self.uncompressedSize = uncompressedSize
    self.localHeaderOffset = localHeaderOffset
  }
}

/// Reads ZIP archives (including ZIP64) from any `ByteSource` (a local file, an object in S3):
/// the central directory from the end, then any entry streamed through ISA-L's Inflate with its
/// CRC-32 and sizes checked. Two small reads and one sequential read per entry.
public struct ZipReader: Sendable {
  public let file: any ByteSource
  public let entries: [ZipEntry]

  public init(path: String) async throws(LifeboatError) {
    try await self.init(source: ReadOnlyFile(path: path))
  }

  public init(source file: any ByteSource) async throws(LifeboatError) {
    self.file = file
    do {
      self.entries = try await Self.readDirectory(file)
    } catch let error as ZipReadError {
      throw .verification("\(file.name) is not a readable ZIP archive: \(error.reason)")
    } catch let error as LifeboatError {
      throw error
    } catch {
      throw .verification("\(file.name): \(error)")
    }
  }

  /// Streams the uncompressed contents of `entry` to `body` and checks its CRC-32 and size.
  public func read(
    _ entry: ZipEntry, chunkSize: Int = 1 << 20, _ body: ([UInt8]) async throws(LifeboatError) -> Void
  ) async throws(LifeboatError) {
    let where_ = "\(file.name) entry \(entry.path)"
    guard entry.flags & ZipFormat.flagEncrypted == 0 else { throw .verification("\(where_) is encrypted") }
    let header = try await file.read(at: entry.localHeaderOffset, count: 30)
    var reader = ByteReader(header)
    let dataStart: UInt64
    do throws(ZipReadError) {
      guard try reader.u32() == ZipFormat.localHeaderSignature else {
        throw ZipReadError.malformed("no local header at offset \(entry.localHeaderOffset)")
      }
      reader.position = 26
      let nameLength = UInt64(try reader.u16())
      let extraLength = UInt64(try reader.u16())
      dataStart = entry.localHeaderOffset + 30 + nameLength + extraLength
    } catch {
      throw .verification("\(where_): \(error.reason)")
    }
    // The name and extra field too, though unused: a reader that hashes the file as it goes
    // (`HashingSource`) then sees one contiguous read from the header on.
    if dataStart > entry.localHeaderOffset + 30, dataStart - entry.localHeaderOffset <= 30 + 2 * 65535 {
      _ = try await file.read(at: entry.localHeaderOffset + 30, count: Int(dataStart - entry.localHeaderOffset - 30))
    }
    guard dataStart + entry.compressedSize <= file.size else {
      throw .verification("\(where_) runs past the end of the file (truncated archive)")
    }
    var crc = CRC32()
    var produced: UInt64 = 0
    func check(_ chunk: UnsafeRawBufferPointer) throws(LifeboatError) {
      crc.update(chunk)
      produced += UInt64(chunk.count)
      guard produced <= entry.uncompressedSize else {
        throw .verification("\(where_) is corrupt: it holds more than its recorded \(entry.uncompressedSize) bytes")
      }
    }
    switch entry.method {
    case ZipCompressionMethod.stored.rawValue:
      guard entry.compressedSize == entry.uncompressedSize else {
        throw .verification("\(where_) is stored but its sizes differ")
      }
      try await file.stream(from: dataStart, length: entry.compressedSize, chunkSize: chunkSize) {
        (chunk) async throws(LifeboatError) in
        try chunk.withBytes { (bytes) throws(LifeboatError) in try check(bytes) }
        try await body(chunk)
      }
    case ZipCompressionMethod.deflate.rawValue:
      let inflater = ISALInflater()
      var inflated: [UInt8] = []
      try await file.stream(from: dataStart, length: entry.compressedSize, chunkSize: chunkSize) {
        (chunk) async throws(LifeboatError) in
        // Emptied, not replaced: its storage is reused unless `body` kept the last one (a fresh
        // buffer this large is an mmap of its own, a page fault per 4 KiB written).
        inflated.removeAll(keepingCapacity: true)
        if inflated.capacity < chunk.count * 4 { inflated.reserveCapacity(chunk.count * 4) }
        try chunk.withBytes { (compressed) throws(LifeboatError) in
          do throws(LifeboatError) {
            try inflater.inflate(compressed) { (out) throws(LifeboatError) in
              try check(out)
              inflated.append(contentsOf: out)
            }
          } catch where !error.message.hasPrefix(where_) {
            throw LifeboatError(error.kind, "\(where_): \(error.message)", underlying: error.underlying)
          }
        }
        if !inflated.isEmpty { try await body(inflated) }
      }
      guard inflater.finished else { throw .verification("\(where_) is corrupt: the compressed data ends early") }
      guard inflater.trailing == 0 else {
        throw .verification(
          "\(where_) is corrupt: its compressed data ends \(inflater.trailing) bytes before its recorded size \(entry.compressedSize)")
      }
    default:
      throw .verification("\(where_) uses compression method \(entry.method), which Lifeboat does not read")
    }
    guard produced == entry.uncompressedSize else {
      throw .verification("\(where_) is corrupt: it holds \(produced) bytes, its header says \(entry.uncompressedSize)")
    }
    guard crc.value == entry.crc32 else {
      throw .verification(
        "\(where_) fails its CRC-32 check (stored \(hex32(entry.crc32)), computed \(hex32(crc.value)))")
    }
  }

  /// Reads a small entry whole (state files); refuses entries above `limit` bytes.
  public func readAll(_ entry: ZipEntry, limit: UInt64 = 64 << 20) async throws(LifeboatError) -> [UInt8] {
    guard entry.uncompressedSize <= limit else {
      throw .verification("\(file.name) entry \(entry.path) is larger than \(limit) bytes")
    }
    var out: [UInt8] = []
    out.reserveCapacity(Int(entry.uncompressedSize))
    try await read(entry) { out.append(contentsOf: $0) }
    return out
  }

  // MARK: - Central directory

  private static func readDirectory(_ file: any ByteSource) async throws -> [ZipEntry] {
    guard file.size >= 22 else { throw ZipReadError.malformed("the file is too short (\(file.size) bytes)") }
    let tailLength = Int(min(file.size, 22 + 65_535 + 20))
    let tailStart = file.size - UInt64(tailLength)
    let tail = try await file.read(at: tailStart, count: tailLength)
    guard let eocd = findEndRecord(tail) else {
      throw ZipReadError.malformed("no end-of-central-directory record (truncated or not a ZIP)")
    }
    var r = ByteReader(tail, at: eocd + 4)
    _ = try r.u16()
    _ = try r.u16()
    _ = try r.u16()
    var count = UInt64(try r.u16())
    var directorySize = UInt64(try r.u32())
    var directoryOffset = UInt64(try r.u32())
    // ZIP64: a locator right before the end record points at the ZIP64 end record.
    if eocd >= 20, ByteReader(tail, at: eocd - 20).peek32() == ZipFormat.zip64LocatorSignature {
      var locator = ByteReader(tail, at: eocd - 20 + 8)
      let record = try locator.u64()
      guard record + 56 <= file.size else { throw ZipReadError.malformed("the ZIP64 end record is out of range") }
      var z = ByteReader(try await file.read(at: record, count: 56))
      guard try z.u32() == ZipFormat.zip64EndOfCentralDirectorySignature else {
        throw ZipReadError.malformed("the ZIP64 locator points at no ZIP64 end record")
      }
      z.position = 32
      count = try z.u64()
      directorySize = try z.u64()
      directoryOffset = try z.u64()
    }
    guard directoryOffset + directorySize <= file.size, directorySize <= 64 << 20 else {
      throw ZipReadError.malformed("the central directory is out of range (truncated archive?)")
    }
    let directory = try await file.read(at: directoryOffset, count: Int(directorySize))
    var d = ByteReader(directory)
    var entries: [ZipEntry] = []
    for _ in 0..<count {
      guard try d.u32() == ZipFormat.centralHeaderSignature else {
        throw ZipReadError.malformed("a central directory record is damaged")
      }
      _ = try d.u16()  // version made by
      _ = try d.u16()  // version needed
      let flags = try d.u16()
      let method = try d.u16()
      _ = try d.u32()  // time, date
      let crc = try d.u32()
      var compressed = UInt64(try d.u32())
      var uncompressed = UInt64(try d.u32())
      let nameLength = Int(try d.u16())
      let extraLength = Int(try d.u16())
      let commentLength = Int(try d.u16())
      _ = try d.u16()  // disk
      _ = try d.u16()  // internal attributes
      _ = try d.u32()  // external attributes
      var offset = UInt64(try d.u32())
      let name = String(decoding: try d.take(nameLength), as: UTF8.self)
      var extra = ByteReader(Array(try d.take(extraLength)))
      _ = try d.take(commentLength)
      while extra.remaining >= 4 {
        let id = try extra.u16()
        let size = Int(try extra.u16())
        let body = Array(try extra.take(size))
        guard id == ZipFormat.zip64ExtraID else { continue }
        var f = ByteReader(body)
        if uncompressed == ZipFormat.max32 { uncompressed = try f.u64() }
        if compressed == ZipFormat.max32 { compressed = try f.u64() }
        if offset == ZipFormat.max32 { offset = try f.u64() }
      }
      guard offset < directoryOffset else { throw ZipReadError.malformed("entry \(name) points past its data") }
      entries.append(
        ZipEntry(
          path: name, method: method, flags: flags, crc32: crc, compressedSize: compressed,
          uncompressedSize: uncompressed, localHeaderOffset: offset))
    }
    return entries
  }

  private static func findEndRecord(_ tail: [UInt8]) -> Int? {
    guard tail.count >= 22 else { return nil }
    var i = tail.count - 22
    while i >= 0 {
      if tail[i] == 0x50, tail[i + 1] == 0x4b, tail[i + 2] == 0x05, tail[i + 3] == 0x06 {
        let commentLength = Int(tail[i + 20]) | Int(tail[i + 21]) << 8
        if i + 22 + commentLength == tail.count { return i }
      }
      i -= 1
    }
    return nil
  }
}

extension ByteReader {
  func peek32() -> UInt32? {
    var copy = self
    return try? copy.u32()
  }
}

func hex32(_ value: UInt32) -> String {
  let s = String(value, radix: 16)
  return String(repeating: "0", count: 8 - s.count) + s
}
