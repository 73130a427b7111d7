/// Bytes that can be read at any offset: a local file, or an object in a store read with
/// ranged requests. The ZIP reader and the snapshot checks read through this.
public protocol ByteSource: Sendable {
  /// Where the bytes come from, for messages (a path or `s3://bucket/key`).
  var name: String { get }
  var size: UInt64 { get }
  /// Exactly `count` bytes at `offset` (small reads: headers, the central directory).
  func read(at offset: UInt64, count: Int) async throws(LifeboatError) -> [UInt8]
  /// `length` bytes from `offset`, handed to `body` in order, in chunks of at most `chunkSize`.
  func stream(
    from offset: UInt64, length: UInt64, chunkSize: Int,
    _ body: ([UInt8]) async throws(LifeboatError) -> Void
  ) async throws(LifeboatError)
}

extension ReadOnlyFile: ByteSource {
  public var name: String { path }

  public func stream(
    from offset: UInt64, length: UInt64, chunkSize: Int,
    _ body: ([UInt8]) async throws(LifeboatError) -> Void
  ) async throws(LifeboatError) {
    var position = offset
    let end = offset + length
    // One buffer, refilled for each chunk: a fresh 1 MiB array is an mmap of its own (a page
    // fault and a zeroed page per 4 KiB, an munmap). A chunk `body` kept is copied by the
    // array's copy-on-write before the refill, never overwritten.
    var chunk: [UInt8] = []
    while position < end {
      let want = Int(min(UInt64(chunkSize), end - position))
      try fill(&chunk, at: position, count: want)
      try await body(chunk)
      position += UInt64(want)
    }
  }
}
