import Foundation
import LifeboatCore

/// One object in a store: a file in a snapshot directory, or an S3 object under the folder.
public struct StoredObject: Sendable, Equatable {
  /// The object's name relative to the store: `<name>.zip`, `<name>.manifest.json`, `<name>`.
  public var key: String
  public var size: UInt64
  public var modified: Date
  /// Its Object Lock (retention or legal hold), as `stat` reads it; nil: none, or not read (a
  /// listing does not carry it, a directory has no locks).
  public var lock: ObjectLockState?

  public init(key: String, size: UInt64, modified: Date, lock: ObjectLockState? = nil) {
    self.key = key
    self.size = size
    self.modified = modified
    self.lock = lock
  }
}

/// Where snapshot files are kept. Keys are single file names (`<name>.zip`,
/// `<name>.manifest.json`); a store maps them to a path in its directory or to
/// `[folder/]<key>` in its bucket.
///
/// The contract every implementation keeps (checked by `SnapshotStoreConformance` in TestSupport):
/// - **Atomic writes.** Nothing is visible under a key until its writer's `finish()` returns;
///   `abort()` (or a failed `finish()`) leaves no trace: no partial object, no `.part` file,
///   no unfinished multipart upload. A finished write replaces an existing object of that key,
///   unless the writer was made with `replace: false`: then `finish()` fails with `.usage` if the
///   key exists (atomically for local files; checked when writing starts for S3).
/// - **Not found** is a `LifeboatError` of kind `.notFound` from `stat` and `read`; `delete` of
///   a missing key succeeds (deleting is idempotent); `list` of an empty or missing location is
///   empty.
/// - **Exact names.** `stat("myname.zip")` never answers for `myname1.zip`; `list` returns only
///   the store's own level (no keys of sub-folders).
/// - **Errors** are one line naming the store and key. Kinds: `.storage` for everything the
///   store could not do (permanent: access denied, bucket missing, disk full; the retry
///   decorator has already retried the transient ones: 5xx, timeouts, connection resets),
///   `.notFound` as above, `.usage` for keys that are not single file names.
/// - Objects written are readable only by their owner (local files are 0600).
public protocol SnapshotStore: Sendable {
  /// Where the store keeps its objects, for messages: a directory, or `s3://bucket/folder`.
  var location: String { get }

  /// Checks, before anything is written, that objects can be written here: the directory can be
  /// created and written, or the bucket exists and the keys open it.
  func checkWritable() async throws(LifeboatError)

  /// Starts writing `key`. Write the bytes in order with the writer, then `finish()` (or `abort()`).
  func makeWriter(for key: String, contentType: String, replace: Bool) async throws(LifeboatError) -> any ObjectWriter

  /// Reads `key`, or `range` of it, handing the bytes to `body` in order.
  func read(
    _ key: String, range: Range<UInt64>?, _ body: ([UInt8]) async throws(LifeboatError) -> Void
  ) async throws(LifeboatError)

  /// Size, modification time and Object Lock of `key`; `.notFound` if there is none.
  func stat(_ key: String) async throws(LifeboatError) -> StoredObject

  /// Every object at the store's level, sorted by key.
  func list() async throws(LifeboatError) -> [StoredObject]

  /// Removes `key`; succeeds when it does not exist.
  func delete(_ key: String) async throws(LifeboatError)
}

/// An object being written. Used by one task at a time.
public protocol ObjectWriter: AnyObject, Sendable {
  /// Appends bytes. May wait while earlier bytes are still being sent (bounded memory).
  func write(_ bytes: [UInt8]) async throws(LifeboatError)
  /// Makes the object visible under its key, complete. Nothing is visible if this fails.
  @discardableResult
  func finish() async throws(LifeboatError) -> StoredObject
  /// Gives up: removes every trace of the write. Never fails.
  func abort() async
}

extension ObjectWriter {
  /// Streams `source` into this writer in 1 MiB chunks: `inspect` sees every chunk, `check` runs
  /// before the object is made visible (a failed check leaves nothing); any failure aborts.
  @discardableResult
  public func fill(
    from source: any ByteSource, inspect: ([UInt8]) -> Void = { _ in }, check: () throws(LifeboatError) -> Void = {}
  ) async throws(LifeboatError) -> StoredObject {
    do throws(LifeboatError) {
      try await source.stream(from: 0, length: source.size, chunkSize: 1 << 20) { (chunk) async throws(LifeboatError) in
        inspect(chunk)
        try await write(chunk)
      }
      try check()
      return try await finish()
    } catch {
      await abort()
      throw error
    }
  }
}

extension SnapshotStore {
  /// Starts writing `key`, replacing an existing object when finished.
  public func makeWriter(for key: String, contentType: String) async throws(LifeboatError) -> any ObjectWriter {
    try await makeWriter(for: key, contentType: contentType, replace: true)
  }

  /// Writes a whole small object at once.
  @discardableResult
  public func put(_ key: String, _ bytes: [UInt8], contentType: String) async throws(LifeboatError) -> StoredObject {
    let writer = try await makeWriter(for: key, contentType: contentType)
    do {
      try await writer.write(bytes)
      return try await writer.finish()
    } catch {
      await writer.abort()
      throw error
    }
  }

  /// Streams `source` into `key` in 1 MiB chunks: `inspect` sees every chunk (hashing), `check`
  /// runs before the object is made visible (a failed check leaves nothing); any failure aborts.
  @discardableResult
  public func put(
    _ key: String, from source: any ByteSource, contentType: String, replace: Bool,
    inspect: ([UInt8]) -> Void = { _ in }, check: () throws(LifeboatError) -> Void = {}
  ) async throws(LifeboatError) -> StoredObject {
    try await makeWriter(for: key, contentType: contentType, replace: replace).fill(from: source, inspect: inspect, check: check)
  }

  /// Reads a whole small object (refuses objects over `limit` bytes).
  public func readAll(_ key: String, limit: UInt64 = 64 << 20) async throws(LifeboatError) -> [UInt8] {
    var out: [UInt8] = []
    try await read(key, range: nil) { (chunk) throws(LifeboatError) in
      out.append(contentsOf: chunk)
      guard out.count <= limit else { throw .storage("\(location)/\(key) is larger than \(limit) bytes") }
    }
    return out
  }

  /// Whether `key` exists.
  public func exists(_ key: String) async throws(LifeboatError) -> Bool {
    do {
      _ = try await stat(key)
      return true
    } catch where error.kind == .notFound {
      return false
    }
  }

  /// Checks that `key` is a single file name, as every store requires.
  public static func validate(key: String) throws(LifeboatError) {
    if key.isEmpty || key == "." || key == ".." || key.contains("/") || key.contains("\\")
      || key.unicodeScalars.contains(where: { $0.properties.generalCategory == .control })
    {
      throw .usage("invalid object name \"\(key)\": it must be a single file name")
    }
  }
}

/// Content types of the objects Lifeboat writes.
public enum ContentType {
  public static let zip = "application/zip"
  public static let json = "application/json"
  public static let octets = "application/octet-stream"
  /// An age-encrypted archive (age has no registered media type).
  public static let age = "application/octet-stream"
}
