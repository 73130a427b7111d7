import Foundation
import LifeboatCore

/// A snapshot found in a store.
public struct StoredSnapshot: Sendable {
  public enum Kind: String, Sendable, Codable {
    /// `<name>.zip`, made by Lifeboat (with a manifest) or by RKE (without).
    case archive
    /// A bare, unzipped `<name>` snapshot file, as older RKE versions kept them.
    case legacy
  }

  public var name: SnapshotName
  public var kind: Kind
  /// The archive (or legacy file) object.
  public var object: StoredObject
  /// Where it is: the store's location.
  public var location: String
  public var manifest: Manifest?
  /// Why the manifest beside the archive could not be used, if it could not.
  public var manifestProblem: String?

  /// `<location>/<key>`, for messages.
  public var path: String { location + "/" + object.key }
  /// Whether the archive is encrypted with age (`<name>.zip.age`): read with an identity.
  public var encrypted: Bool { object.key.hasSuffix(".zip.age") }
  public var size: UInt64 { object.size }
  /// The manifest's creation time, else the object's modification time.
  public var created: Date { manifest?.createdAt ?? object.modified }
}

/// The snapshots in one store: `<name>.zip` with an optional `<name>.manifest.json`, and legacy
/// bare snapshot files (recognised by bbolt's magic number). Names are matched exactly.
public struct SnapshotCatalog: Sendable {
  public let store: any SnapshotStore
  /// The age identities that open encrypted archives (`<name>.zip.age`); none: such archives are
  /// listed, but reading one is a usage error naming `--age-identity`.
  public let identities: [AgeIdentity]

  public init(store: any SnapshotStore, identities: [AgeIdentity] = []) {
    self.store = store
    self.identities = identities
  }

  public func list() async throws(LifeboatError) -> [StoredSnapshot] {
    let objects = try await store.list()
    let keys = Set(objects.map(\.key))
    var found: [StoredSnapshot] = []
    for object in objects {
      let key = object.key
      if key.hasSuffix(".manifest.json") { continue }
      if let stem = SnapshotName.archiveStem(of: key) {
        guard let name = try? SnapshotName(stem) else { continue }
        // A plain and an encrypted object under one name: listed once, as a problem (which of
        // the two the manifest describes cannot be told); delete removes both.
        if key.hasSuffix(".zip.age"), keys.contains(name.archiveFileName) { continue }
        var snapshot = try await archive(name, object: object, hasManifest: keys.contains(name.manifestFileName))
        if key.hasSuffix(".zip"), keys.contains(name.encryptedArchiveFileName) {
          snapshot.manifestProblem = Self.bothCopies(name, in: store.location)
        }
        found.append(snapshot)
      } else if let name = try? SnapshotName(key), try await isLegacySnapshot(object) {
        found.append(StoredSnapshot(name: name, kind: .legacy, object: object, location: store.location))
      }
    }
    return found.sorted { $0.name < $1.name }
  }

  /// The snapshot named exactly `name`: `<name>.zip`, else `<name>.zip.age`, else a legacy
  /// `<name>` file.
  public func find(_ name: SnapshotName) async throws(LifeboatError) -> StoredSnapshot {
    let plain = try await statIfPresent(name.archiveFileName)
    let sealed = try await statIfPresent(name.encryptedArchiveFileName)
    if let object = plain ?? sealed {
      let hasManifest = try await store.exists(name.manifestFileName)
      var snapshot = try await archive(name, object: object, hasManifest: hasManifest)
      if plain != nil, sealed != nil { snapshot.manifestProblem = Self.bothCopies(name, in: store.location) }
      return snapshot
    }
    if let object = try await statIfPresent(name.value), try await isLegacySnapshot(object) {
      return StoredSnapshot(name: name, kind: .legacy, object: object, location: store.location)
    }
    throw .notFound("snapshot \(name) not found in \(store.location)")
  }

  /// Deletes a snapshot, the one way every command and node does it: an archive's manifest
  /// first (a listed archive without a manifest is never taken for a complete, verified one),
  /// then the archive; a legacy file alone. Returns what was deleted, archive first.
  @discardableResult
  public func delete(_ snapshot: StoredSnapshot, now: Date = Date()) async throws(LifeboatError) -> [String] {
    // Each object looked up once: whether it is there, and its Object Lock. Its twin under the
    // other extension (a plain and an encrypted object of one name) goes too.
    let manifest = snapshot.kind == .archive ? try await statIfPresent(snapshot.name.manifestFileName) : nil
    let twin = snapshot.kind == .archive
      ? try await statIfPresent(snapshot.encrypted ? snapshot.name.archiveFileName : snapshot.name.encryptedArchiveFileName) : nil
    let archive = try await statIfPresent(snapshot.object.key)
    // Object Lock: nothing of a snapshot is deleted while any of its objects is locked (a delete
    // in a versioned bucket would only hide the locked version behind a delete marker).
    if let locked = [archive, manifest, twin].compactMap({ $0 }).first(where: { $0.lock?.holds(at: now) == true }) {
      throw Self.lockedError(locked, in: store.location)
    }
    var deleted: [String] = []
    if let manifest {
      try await store.delete(manifest.key)
      deleted.append(store.location + "/" + manifest.key)
    }
    try await store.delete(snapshot.object.key)
    deleted.insert(snapshot.path, at: 0)
    if let twin {
      try await store.delete(twin.key)
      deleted.append(store.location + "/" + twin.key)
    }
    return deleted
  }

  /// "s3://…/x.zip is locked until … (MODE): kept", marked `.locked` (not a failure of a run).
  static func lockedError(_ object: StoredObject, in location: String) -> LifeboatError {
    LifeboatError(.storage, "\(location)/\(object.key) is \(object.lock?.description ?? "locked"): kept", underlying: .locked)
  }

  /// The first object of `snapshot` that Object Lock holds at `now` (for a dry run: what a
  /// delete would keep), its `lock` read; nil when none is.
  public func lockedObject(of snapshot: StoredSnapshot, now: Date = Date()) async throws(LifeboatError) -> StoredObject? {
    for key in [snapshot.object.key] + (snapshot.manifest == nil ? [] : [snapshot.name.manifestFileName]) {
      if let object = try await statIfPresent(key), object.lock?.holds(at: now) == true { return object }
    }
    return nil
  }

  static func bothCopies(_ name: SnapshotName, in location: String) -> String {
    "\(location) holds both \(name.archiveFileName) and \(name.encryptedArchiveFileName): remove the one that is not snapshot \(name) (`snapshot delete` removes both)"
  }

  /// The snapshot's bytes, for the ZIP reader and the checks: an encrypted archive's plaintext,
  /// decrypted as it is read (never a decrypted copy). `stored` reads the object instead of
  /// `storedSource(of:)` (verify hashes the sealed bytes as they are decrypted).
  public func source(of snapshot: StoredSnapshot, stored: (any ByteSource)? = nil) async throws(LifeboatError)
    -> any ByteSource
  {
    let stored = stored ?? storedSource(of: snapshot)
    guard snapshot.encrypted else { return stored }
    guard !identities.isEmpty else {
      throw .usage("\(snapshot.path) is encrypted (age): give --age-identity with a key it was encrypted to")
    }
    return try await AgeDecryptingSource(base: stored, identities: identities)
  }

  /// The object's bytes as stored (an encrypted archive stays encrypted).
  public func storedSource(of snapshot: StoredSnapshot) -> any ByteSource {
    if let local = store as? LocalStore, let file = try? ReadOnlyFile(path: local.path(snapshot.object.key)) {
      return file
    }
    return StoreObjectSource(store: store, object: snapshot.object)
  }

  private func statIfPresent(_ key: String) async throws(LifeboatError) -> StoredObject? {
    do { return try await store.stat(key) } catch where error.kind == .notFound { return nil }
  }

  /// An archive with its manifest. A manifest that cannot be decoded, or names another snapshot,
  /// is a `manifestProblem` (the checks fail on it); failing to read it is the store's error.
  private func archive(_ name: SnapshotName, object: StoredObject, hasManifest: Bool) async throws(LifeboatError)
    -> StoredSnapshot
  {
    guard hasManifest else { return Self.described(name, kind: .archive, object: object, location: store.location, manifest: nil) }
    let bytes: [UInt8]?
    do {
      bytes = try await store.readAll(name.manifestFileName, limit: 1 << 20)
    } catch where error.kind == .notFound {
      bytes = nil  // deleted since the listing
    }
    return Self.described(name, kind: .archive, object: object, location: store.location, manifest: bytes)
  }

  /// A snapshot as a catalog describes it, from its object and its manifest's bytes (nil: none):
  /// also for one read from elsewhere (a node's copy through its agent).
  public static func described(
    _ name: SnapshotName, kind: StoredSnapshot.Kind, object: StoredObject, location: String, manifest bytes: [UInt8]?
  ) -> StoredSnapshot {
    var snapshot = StoredSnapshot(name: name, kind: kind, object: object, location: location)
    guard let bytes else { return snapshot }
    let where_ = "\(location)/\(name.manifestFileName)"
    do {
      let manifest = try Manifest.decode(bytes, path: where_)
      if manifest.name == name {
        snapshot.manifest = manifest
      } else {
        snapshot.manifestProblem = "\(where_) describes \(manifest.name), not \(name)"
      }
    } catch {
      snapshot.manifestProblem = error.message
    }
    return snapshot
  }

  /// bbolt's first meta page: a 16-byte page header, then the magic 0xED0CDAED (little endian).
  func isLegacySnapshot(_ object: StoredObject) async throws(LifeboatError) -> Bool {
    guard object.size >= 4096, !object.key.hasSuffix(".part"), !object.key.hasSuffix(".json") else { return false }
    do {
      return try await StoreObjectSource(store: store, object: object).read(at: 16, count: 4) == [0xED, 0xDA, 0x0C, 0xED]
    } catch where error.kind == .notFound || error.kind == .verification {
      return false
    }
  }
}
