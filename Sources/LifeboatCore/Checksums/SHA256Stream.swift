import Crypto

/// SHA-256 over a stream of chunks, as lowercase hex at the end.
public struct SHA256Stream: Sendable {
  private var hasher = SHA256()
  public init() {}
  public mutating func update(_ bytes: [UInt8]) { hasher.update(data: bytes) }
  public mutating func update(_ bytes: UnsafeRawBufferPointer) { hasher.update(bufferPointer: bytes) }
  public func finalize() -> String { hasher.finalize().hexString }
}
