import Synchronization

/// A `ByteSource` that hashes the whole file while a reader goes through it: every read that
/// continues where the hashed prefix ends extends it, reads elsewhere (a ZIP's central directory,
/// read first) pass through. `finish()` hashes whatever the reader skipped (for a snapshot
/// archive: its small tail) and returns the file's SHA-256, so unzipping a database and hashing
/// its archive cost one read of the archive, not two.
public final class HashingSource: ByteSource {
  private let base: any ByteSource
  private struct State: Sendable {
    var hash = SHA256Stream()
    var hashed: UInt64 = 0
  }
  private let state = Mutex(State())

  public init(_ base: any ByteSource) { self.base = base }

  public var name: String { base.name }
  public var size: UInt64 { base.size }

  public func read(at offset: UInt64, count: Int) async throws(LifeboatError) -> [UInt8] {
    let bytes = try await base.read(at: offset, count: count)
    absorb(bytes, at: offset)
    return bytes
  }

  public func stream(
    from offset: UInt64, length: UInt64, chunkSize: Int, _ body: ([UInt8]) async throws(LifeboatError) -> Void
  ) async throws(LifeboatError) {
    var position = offset
    try await base.stream(from: offset, length: length, chunkSize: chunkSize) { (chunk) async throws(LifeboatError) in
      absorb(chunk, at: position)
      position += UInt64(chunk.count)
      try await body(chunk)
    }
  }

  /// Hashes the rest of the file and returns its SHA-256 (hex) and size.
  public func finish() async throws(LifeboatError) -> (sha256: String, size: UInt64) {
    let from = state.withLock { $0.hashed }
    if from < size {
      try await base.stream(from: from, length: size - from, chunkSize: 1 << 20) { (chunk) throws(LifeboatError) in
        state.withLock {
          $0.hash.update(chunk)
          $0.hashed += UInt64(chunk.count)
        }
      }
    }
    return (state.withLock { $0.hash.finalize() }, size)
  }

  /// Bytes at `offset` extend the hashed prefix when they overlap its end.
  private func absorb(_ bytes: [UInt8], at offset: UInt64) {
    state.withLock { s in
      let end = offset + UInt64(bytes.count)
      guard offset <= s.hashed, end > s.hashed else { return }
      let skip = Int(s.hashed - offset)
      bytes.withUnsafeBytes { s.hash.update(UnsafeRawBufferPointer(rebasing: $0[skip...])) }
      s.hashed = end
    }
  }
}
