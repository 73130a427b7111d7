/// What `etcdctl snapshot status` reports for an etcd database, computed natively.
public struct SnapshotStatus: Sendable, Codable, Equatable {
  /// CRC-32C over every bucket name, key and value, in bbolt's order (etcdctl's "hash").
  public var hash: UInt32
  /// The highest revision in the `key` bucket.
  public var revision: Int64
  /// Every key of every bucket: each stored revision of each etcd key, plus etcd's internal keys
  /// (members, leases, meta, ...). etcdctl calls this "total keys".
  public var totalKeys: Int64
  /// Bytes in use: the high-water page times the page size (etcdctl's "total size").
  public var totalSize: Int64

  public init(hash: UInt32, revision: Int64, totalKeys: Int64, totalSize: Int64) {
    self.hash = hash
    self.revision = revision
    self.totalKeys = totalKeys
    self.totalSize = totalSize
  }

  /// Reads the database file at `path` (a bbolt file, with or without etcd's trailer).
  public static func read(path: String) throws(LifeboatError) -> SnapshotStatus {
    let reader = try BoltReader(file: try ReadOnlyFile(path: path))
    var crc = CRC32C()
    var revision: Int64 = 0
    var keys: Int64 = 0
    var inKeyBucket = false
    try reader.forEachBucket { name in
      crc.update(name)
      inKeyBucket = name.elementsEqual("key".utf8)
    } entry: { (key, value) throws(LifeboatError) in
      crc.update(key)
      crc.update(value)
      if inKeyBucket {
        guard key.count >= 8 else { throw .verification("\(path): a key in bucket \"key\" is not a revision") }
        revision = Int64(bitPattern: key.prefix(8).reduce(0) { $0 << 8 | UInt64($1) })
      }
      keys += 1
    }
    return SnapshotStatus(
      hash: crc.value, revision: revision, totalKeys: keys, totalSize: Int64(reader.highWaterPage) * Int64(reader.pageSize))
  }
}
