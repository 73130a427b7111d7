import Crypto
import Foundation

/// The plaintext of an age file as a `ByteSource`: any offset can be read, since each 64 KiB
/// chunk opens on its own (its nonce is its index). Every chunk read is authenticated, the last
/// one as the last: an altered byte, a reordered chunk or a file cut at a chunk boundary is a
/// verification error, never plaintext. So the ZIP reader, verify and restore read encrypted
/// snapshots unchanged, without a decrypted temporary copy.
public struct AgeDecryptingSource: ByteSource {
  public let base: any ByteSource
  /// Plaintext size.
  public let size: UInt64
  private let payloadStart: UInt64
  private let chunkCount: UInt64
  private let key: SymmetricKey
  private static let sealedChunk = UInt64(AgeFormat.chunkSize + AgeFormat.tagSize)

  public var name: String { base.name }

  /// Opens `base` with `identities`: reads and checks the header (its MAC included); a missing
  /// match is a usage error, a malformed file a verification error. Nothing is decrypted yet.
  public init(base: any ByteSource, identities: [AgeIdentity]) async throws(LifeboatError) {
    let prefixLength = Int(min(base.size, 64 * 1024))
    let prefix = try await base.read(at: 0, count: prefixLength)
    let header = try AgeFormat.parseHeader(prefix, name: base.name)
    let fileKey = try AgeFormat.fileKey(header, identities: identities, name: base.name)
    let nonceEnd = UInt64(header.length + AgeFormat.nonceSize)
    guard base.size >= nonceEnd + UInt64(AgeFormat.tagSize) else {
      throw .verification("\(base.name) is truncated: the age payload is missing")
    }
    let nonce = header.length + AgeFormat.nonceSize <= prefix.count
      ? Array(prefix[header.length..<(header.length + AgeFormat.nonceSize)])
      : try await base.read(at: UInt64(header.length), count: AgeFormat.nonceSize)
    let payload = base.size - nonceEnd
    let chunks = (payload + Self.sealedChunk - 1) / Self.sealedChunk
    let last = payload - (chunks - 1) * Self.sealedChunk
    guard last >= UInt64(AgeFormat.tagSize) + (chunks > 1 ? 1 : 0) else {
      throw .verification("\(base.name) is truncated or padded: its last age chunk is \(last) bytes")
    }
    self.base = base
    self.key = AgeFormat.payloadKey(fileKey, nonce: nonce)
    self.payloadStart = nonceEnd
    self.chunkCount = chunks
    self.size = payload - chunks * UInt64(AgeFormat.tagSize)
  }

  /// Whether `bytes` start like an age file (its first line).
  public static func looksEncrypted(_ bytes: [UInt8]) -> Bool {
    bytes.starts(with: Array((AgeFormat.intro + "\n").utf8)) || bytes.starts(with: Array("-----BEGIN AGE ENCRYPTED FILE-----".utf8))
  }

  private func open(_ sealed: ArraySlice<UInt8>, index: UInt64) throws(LifeboatError) -> [UInt8] {
    let last = index == chunkCount - 1
    guard let plain = AgeFormat.open(sealed, key: key, nonce: AgeFormat.chunkNonce(index, last: last)) else {
      throw .verification("\(name): age chunk \(index + 1) of \(chunkCount) does not authenticate: the object was altered or truncated")
    }
    return plain
  }

  public func read(at offset: UInt64, count: Int) async throws(LifeboatError) -> [UInt8] {
    guard count > 0 else { return [] }
    guard offset + UInt64(count) <= size else { throw .verification("\(name) is truncated: \(count) bytes at \(offset) wanted") }
    var out: [UInt8] = []
    out.reserveCapacity(count)
    try await stream(from: offset, length: UInt64(count), chunkSize: count) { out += $0 }
    return out
  }

  public func stream(
    from offset: UInt64, length: UInt64, chunkSize: Int, _ body: ([UInt8]) async throws(LifeboatError) -> Void
  ) async throws(LifeboatError) {
    guard length > 0 else { return }
    guard offset + length <= size else { throw .verification("\(name) is truncated at offset \(size)") }
    let chunk = UInt64(AgeFormat.chunkSize)
    let first = offset / chunk
    let lastIndex = (offset + length - 1) / chunk
    let cipherStart = payloadStart + first * Self.sealedChunk
    let cipherEnd = min(base.size, payloadStart + (lastIndex + 1) * Self.sealedChunk)
    var index = first
    var skip = Int(offset - first * chunk)
    var remaining = length
    var pending: [UInt8] = []
    var out: [UInt8] = []
    out.reserveCapacity(min(chunkSize, Int(length)) + AgeFormat.chunkSize)
    func emit(_ plain: [UInt8]) async throws(LifeboatError) {
      let usable = plain.count - skip
      let take = Int(min(UInt64(max(0, usable)), remaining))
      if take > 0 { out.append(contentsOf: plain[skip..<(skip + take)]) }
      remaining -= UInt64(take)
      skip = 0
      if out.count >= chunkSize || remaining == 0 {
        try await body(out)
        out.removeAll(keepingCapacity: true)
      }
    }
    try await base.stream(from: cipherStart, length: cipherEnd - cipherStart, chunkSize: max(chunkSize, 1 << 20)) {
      (bytes) async throws(LifeboatError) in
      pending.append(contentsOf: bytes)
      var consumed = 0
      // Every chunk but the last as soon as it is whole; the last once the stream has ended.
      while remaining > 0, index < chunkCount - 1, pending.count - consumed >= Int(Self.sealedChunk) {
        let plain = try open(pending[consumed..<(consumed + Int(Self.sealedChunk))], index: index)
        consumed += Int(Self.sealedChunk)
        index += 1
        try await emit(plain)
      }
      if consumed > 0 { pending.removeFirst(consumed) }
    }
    if remaining > 0, !pending.isEmpty {
      let plain = try open(pending[...], index: index)
      try await emit(plain)
    }
    guard remaining == 0 else { throw .verification("\(name) is truncated: the age payload ended early") }
  }
}
