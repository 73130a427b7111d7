import Crypto
import Foundation
import LifeboatCore

/// An `ObjectWriter` decorator that encrypts what it is given to age recipients before its base
/// writer sees it: the header first, then each 64 KiB chunk as soon as it is sealed. Nothing
/// plain reaches the base; memory is one chunk. Also hashes what it writes (the stored object's
/// SHA-256 and size, for the manifest).
public actor AgeEncryptingWriter: ObjectWriter {
  private let base: any ObjectWriter
  private var encryptor: AgeEncryptor
  private var started = false
  private var hash = SHA256()
  private var written: UInt64 = 0
  /// The sealed chunks of each write go out in a buffer used again (`lag` 1: the base may still
  /// hold the last one, as `TeeWriter`'s upload pump does).
  private let sealed = BufferPool(capacity: 0, keep: 2, lag: 1)
  public let recipients: [AgeRecipient]

  public init(base: any ObjectWriter, recipients: [AgeRecipient]) {
    self.base = base
    self.recipients = recipients
    self.encryptor = AgeEncryptor(recipients: recipients)
  }

  /// What a manifest says of the encrypted object (recipients, its SHA-256 and size), once it is
  /// sealed (`seal` or `finish`).
  public var manifestEncryption: Manifest.Encryption? {
    finished.map { Manifest.Encryption(recipients: recipients.map(\.description), objectSHA256: $0, objectSize: written) }
  }
  private var finished: String?

  private func pass(_ bytes: [UInt8]) async throws(LifeboatError) {
    guard !bytes.isEmpty else { return }
    hash.update(data: bytes)
    written += UInt64(bytes.count)
    try await base.write(bytes)
  }

  private func start() async throws(LifeboatError) {
    guard !started else { return }
    started = true
    try await pass(try encryptor.begin())
  }

  public func write(_ bytes: [UInt8]) async throws(LifeboatError) {
    try await start()
    var out = sealed.take()
    encryptor.update(bytes, appendingTo: &out)
    try await pass(out)
    sealed.recycle(out)
  }

  /// Writes the last chunk to the base without finishing it (when the base is finished apart,
  /// as `TeeWriter`'s two sides are). The object's digest is known from here.
  public func seal() async throws(LifeboatError) {
    guard finished == nil else { return }
    try await start()
    try await pass(encryptor.finish())
    finished = hash.finalize().hexString
  }

  @discardableResult
  public func finish() async throws(LifeboatError) -> StoredObject {
    try await seal()
    return try await base.finish()
  }

  public func abort() async {
    await base.abort()
  }
}
