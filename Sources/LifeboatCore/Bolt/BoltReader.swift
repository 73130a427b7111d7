/// Reads an etcd backend database (a bbolt file) the way `etcdctl snapshot status` does, without
/// etcdctl: walks every top-level bucket in key order and reports the same figures.
///
/// bbolt's format (go.etcd.io/bbolt): pages of `pageSize` bytes, each with a 16-byte header
/// (id u64, flags u16, count u16, overflow u32). Pages 0 and 1 are meta pages (magic 0xED0CDAED,
/// version 2, page size, root bucket, high-water page id, transaction id, FNV-1a checksum); the
/// valid one with the higher transaction id is current. Branch pages hold (pos, ksize, pgid)
/// elements, leaf pages (flags, pos, ksize, vsize); a bucket is a leaf value with flag 1 whose
/// first 16 bytes are (root pgid, sequence), and with root 0 the bucket's page follows inline.
public struct BoltReader {
  public let file: ReadOnlyFile
  public let pageSize: Int
  /// The current meta page's fields.
  public let rootPage: UInt64
  public let highWaterPage: UInt64
  public let transactionID: UInt64

  static let magic: UInt32 = 0xED0C_DAED
  static let branchFlag: UInt16 = 0x01
  static let leafFlag: UInt16 = 0x02
  static let bucketLeafFlag: UInt32 = 0x01
  static let pageHeaderSize = 16

  public init(file: ReadOnlyFile) throws(LifeboatError) {
    self.file = file
    guard file.size >= 4096 else { throw .verification("\(file.path) is too small to be an etcd database") }
    let first = try file.read(at: 0, count: 4096)
    let metaA = Self.parseMeta(first[Self.pageHeaderSize...])
    let size = metaA.map { Int($0.pageSize) } ?? Int(Self.le32(first, 16 + 8))
    guard size >= 512, size <= 1 << 20, size & (size - 1) == 0, UInt64(size) * 2 <= file.size else {
      throw .verification("\(file.path) is not an etcd database (no valid bbolt meta page)")
    }
    let second = try file.read(at: UInt64(size), count: 64 + Self.pageHeaderSize)
    let metaB = Self.parseMeta(second[Self.pageHeaderSize...])
    let meta = [metaA, metaB].compactMap { $0 }.max { $0.txid < $1.txid }
    guard let meta else {
      throw .verification("\(file.path) is not an etcd database, or both bbolt meta pages are damaged")
    }
    self.pageSize = size
    self.rootPage = meta.root
    self.highWaterPage = meta.pgid
    self.transactionID = meta.txid
    guard UInt64(size) * meta.pgid <= file.size else {
      throw .verification(
        "\(file.path) is truncated: the database needs \(UInt64(size) * meta.pgid) bytes, the file has \(file.size)")
    }
  }

  struct Meta {
    var pageSize: UInt32
    var root: UInt64
    var pgid: UInt64
    var txid: UInt64
  }

  /// A meta page body, or nil when its magic, version or checksum is wrong.
  static func parseMeta(_ body: ArraySlice<UInt8>) -> Meta? {
    let bytes = Array(body.prefix(64))
    guard bytes.count == 64, le32(bytes, 0) == magic, le32(bytes, 4) == 2 else { return nil }
    var hash: UInt64 = 0xcbf2_9ce4_8422_2325  // FNV-1a 64 over the 56 bytes before the checksum
    for byte in bytes[0..<56] {
      hash ^= UInt64(byte)
      hash = hash &* 0x100_0000_01b3
    }
    guard hash == le64(bytes, 56) else { return nil }
    return Meta(pageSize: le32(bytes, 8), root: le64(bytes, 16), pgid: le64(bytes, 40), txid: le64(bytes, 48))
  }

  /// A page (with its overflow pages) read whole.
  func page(_ id: UInt64) throws(LifeboatError) -> [UInt8] {
    guard id >= 2, id < highWaterPage else {
      throw .verification("\(file.path): bbolt page \(id) is out of range (corrupt database)")
    }
    let header = try file.read(at: id * UInt64(pageSize), count: Self.pageHeaderSize)
    let overflow = UInt64(Self.le32(header, 12))
    guard id + overflow < highWaterPage else {
      throw .verification("\(file.path): bbolt page \(id) overflows the database (corrupt database)")
    }
    return try file.read(at: id * UInt64(pageSize), count: Int((overflow + 1) * UInt64(pageSize)))
  }

  /// Calls `body` with every (key, value, isBucket) of the bucket rooted at page `root`, or held
  /// inline in `inlinePage`, in key order.
  func forEach(
    root: UInt64, inlinePage: ArraySlice<UInt8>?, depth: Int = 0,
    _ body: (ArraySlice<UInt8>, ArraySlice<UInt8>, Bool) throws(LifeboatError) -> Void
  ) throws(LifeboatError) {
    guard depth < 64 else { throw .verification("\(file.path): bbolt tree too deep (corrupt database)") }
    let bytes: [UInt8]
    let base: Int
    if let inlinePage {
      bytes = Array(inlinePage)
      base = 0
    } else {
      bytes = try page(root)
      base = 0
      guard Self.le64(bytes, 0) == root else {
        throw .verification("\(file.path): bbolt page \(root) has the wrong id (corrupt database)")
      }
    }
    guard bytes.count >= base + Self.pageHeaderSize else {
      throw .verification("\(file.path): bbolt page \(root) is cut short (corrupt database)")
    }
    let flags = Self.le16(bytes, base + 8)
    let count = Int(Self.le16(bytes, base + 10))
    let elements = base + Self.pageHeaderSize
    guard elements + count * 16 <= bytes.count else {
      throw .verification("\(file.path): bbolt page \(root) lists more elements than it holds (corrupt database)")
    }
    if flags & Self.branchFlag != 0 {
      for i in 0..<count {
        let child = Self.le64(bytes, elements + i * 16 + 8)
        try forEach(root: child, inlinePage: nil, depth: depth + 1, body)
      }
    } else if flags & Self.leafFlag != 0 {
      for i in 0..<count {
        let element = elements + i * 16
        let elementFlags = Self.le32(bytes, element)
        let keyStart = element + Int(Self.le32(bytes, element + 4))
        let keySize = Int(Self.le32(bytes, element + 8))
        let valueSize = Int(Self.le32(bytes, element + 12))
        guard keyStart + keySize + valueSize <= bytes.count else {
          throw .verification("\(file.path): a bbolt element runs past its page (corrupt database)")
        }
        try body(
          bytes[keyStart..<(keyStart + keySize)], bytes[(keyStart + keySize)..<(keyStart + keySize + valueSize)],
          elementFlags & Self.bucketLeafFlag != 0)
      }
    } else {
      throw .verification("\(file.path): bbolt page \(root) is neither branch nor leaf (corrupt database)")
    }
  }

  /// Visits every top-level bucket: its name, then each of its (key, value) in order. Values of
  /// nested buckets are reported empty, as bbolt's `ForEach` does.
  public func forEachBucket(
    _ bucket: (ArraySlice<UInt8>) throws(LifeboatError) -> Void,
    entry: (ArraySlice<UInt8>, ArraySlice<UInt8>) throws(LifeboatError) -> Void
  ) throws(LifeboatError) {
    try forEach(root: rootPage, inlinePage: nil) { (name, value, isBucket) throws(LifeboatError) in
      guard isBucket, value.count >= 16 else {
        throw .verification("\(file.path): top-level key \(String(decoding: name, as: UTF8.self)) is not a bucket")
      }
      try bucket(name)
      let root = Self.le64(Array(value), 0)
      let inline: ArraySlice<UInt8>? = root == 0 ? value.dropFirst(16) : nil
      try forEach(root: root, inlinePage: inline) { (key, value, nested) throws(LifeboatError) in
        try entry(key, nested ? [][...] : value)
      }
    }
  }

  // MARK: - Little-endian helpers

  static func le16(_ b: some RandomAccessCollection<UInt8>, _ at: Int) -> UInt16 {
    let s = b.index(b.startIndex, offsetBy: at)
    return UInt16(b[s]) | UInt16(b[b.index(after: s)]) << 8
  }

  static func le32(_ b: some RandomAccessCollection<UInt8>, _ at: Int) -> UInt32 {
    var v: UInt32 = 0
    var i = b.index(b.startIndex, offsetBy: at)
    for shift in stride(from: 0, to: 32, by: 8) {
      v |= UInt32(b[i]) << UInt32(shift)
      i = b.index(after: i)
    }
    return v
  }

  static func le64(_ b: some RandomAccessCollection<UInt8>, _ at: Int) -> UInt64 {
    UInt64(le32(b, at)) | UInt64(le32(b, at + 4)) << 32
  }
}
