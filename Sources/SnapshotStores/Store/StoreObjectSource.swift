import LifeboatCore

/// A stored object as a `ByteSource`: small reads and sequential streams become ranged reads.
public struct StoreObjectSource: ByteSource {
  public let store: any SnapshotStore
  public let key: String
  public let size: UInt64

  public init(store: any SnapshotStore, object: StoredObject) {
    self.store = store
    self.key = object.key
    self.size = object.size
  }

  public var name: String { "\(store.location)/\(key)" }

  public func read(at offset: UInt64, count: Int) async throws(LifeboatError) -> [UInt8] {
    guard count > 0 else { return [] }
    guard offset + UInt64(count) <= size else { throw .verification("\(name) is truncated: \(count) bytes at \(offset) wanted") }
    var out: [UInt8] = []
    out.reserveCapacity(count)
    try await store.read(key, range: offset..<(offset + UInt64(count))) { out.append(contentsOf: $0) }
    guard out.count == count else { throw .verification("\(name) is truncated at offset \(offset + UInt64(out.count))") }
    return out
  }

  public func stream(
    from offset: UInt64, length: UInt64, chunkSize: Int, _ body: ([UInt8]) async throws(LifeboatError) -> Void
  ) async throws(LifeboatError) {
    guard length > 0 else { return }
    var received: UInt64 = 0
    var pending: [UInt8] = []
    try await store.read(key, range: offset..<(offset + length)) { (chunk) throws(LifeboatError) in
      received += UInt64(chunk.count)
      pending.append(contentsOf: chunk)
      if pending.count >= chunkSize {
        try await body(pending)
        pending = []
      }
    }
    if !pending.isEmpty { try await body(pending) }
    guard received == length else { throw .verification("\(name) is truncated at offset \(offset + received)") }
  }
}
