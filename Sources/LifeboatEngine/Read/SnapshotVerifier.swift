import Foundation
import LifeboatCore
import SnapshotStores

/// The outcome of `lifeboat snapshot verify`: every check that passed.
public struct VerifyReport: Sendable, Codable {
  public var name: String
  public var path: String
  public var kind: StoredSnapshot.Kind
  public var dbSize: UInt64
  public var dbSHA256: String
  public var archiveSHA256: String?
  public var stateFile: Bool
  public var hasManifest: Bool
  /// Human-readable list of the checks made, in order.
  public var checks: [String]
  /// What could not be checked, and why (absent from older agents' reports).
  public var notes: [String]?

  public init(
    name: String, path: String, kind: StoredSnapshot.Kind, dbSize: UInt64, dbSHA256: String, archiveSHA256: String?,
    stateFile: Bool, hasManifest: Bool, checks: [String]
  ) {
    self.name = name
    self.path = path
    self.kind = kind
    self.dbSize = dbSize
    self.dbSHA256 = dbSHA256
    self.archiveSHA256 = archiveSHA256
    self.stateFile = stateFile
    self.hasManifest = hasManifest
    self.checks = checks
  }
}

/// Re-reads a snapshot completely and checks every hash it can: the ZIP CRC-32 and sizes,
/// etcd's SHA-256 trailer, the state file, and, when Lifeboat made it, the manifest's SHA-256
/// of the database and of the archive. Any mismatch is a `.verification` error naming the check.
public struct SnapshotVerifier: Sendable {
  public init() {}

  public func verify(_ snapshot: StoredSnapshot, in catalog: SnapshotCatalog) async throws(LifeboatError) -> VerifyReport {
    guard snapshot.encrypted, snapshot.manifest?.encryption != nil else {
      var report = try await verify(try await Self.open(snapshot, source: try await catalog.source(of: snapshot)))
      if snapshot.encrypted, snapshot.manifest != nil {
        report.notes = [
          "the manifest records no encryption (an archive sealed by hand?), so the encrypted object had no recorded SHA-256 to compare with"
        ]
      }
      return report
    }
    let sealed = HashingSource(catalog.storedSource(of: snapshot))
    return try await verify(snapshot, sealed: sealed, plain: try await catalog.source(of: snapshot, stored: sealed))
  }

  /// An encrypted archive read with an identity: every check of its plaintext, and, in the same
  /// read, the sealed object's SHA-256 and size against the manifest's `encryption` (`plain`
  /// decrypts what `sealed` reads).
  public func verify(_ snapshot: StoredSnapshot, sealed: HashingSource, plain: any ByteSource) async throws(LifeboatError)
    -> VerifyReport
  {
    var report = try await verify(try await Self.open(snapshot, source: plain))
    guard let encryption = snapshot.manifest?.encryption else { return report }
    let (sha, size) = try await sealed.finish()
    try Self.requireSealed(sha: sha, size: size, encryption, snapshot)
    report.checks.append("the encrypted object's SHA-256 and size match the manifest")
    return report
  }

  /// An encrypted archive read without an identity (an agent's, with `encrypt_local`): only what
  /// can be checked sealed, the stored object's SHA-256 and size against the manifest.
  public func verifySealed(_ snapshot: StoredSnapshot, in catalog: SnapshotCatalog) async throws(LifeboatError) -> VerifyReport {
    guard let manifest = snapshot.manifest, let encryption = manifest.encryption else {
      throw .verification(snapshot.manifestProblem ?? "\(snapshot.path) is encrypted and has no manifest to check it against")
    }
    let hashing = HashingSource(catalog.storedSource(of: snapshot))
    try await hashing.stream(from: 0, length: hashing.size, chunkSize: 1 << 20) { _ in }
    let (sha, size) = try await hashing.finish()
    try Self.requireSealed(sha: sha, size: size, encryption, snapshot)
    return VerifyReport(
      name: snapshot.name.value, path: snapshot.path, kind: snapshot.kind, dbSize: manifest.dbSize, dbSHA256: manifest.dbSHA256,
      archiveSHA256: manifest.archiveSHA256, stateFile: manifest.stateFile, hasManifest: true,
      checks: ["the encrypted object's SHA-256 and size match the manifest (its contents are checked with --age-identity)"])
  }

  /// Opens a snapshot for `verify(_:sink:)`: the ZIP's directory read, and, when a manifest
  /// gives the archive's SHA-256, the archive hashed in the same read as the database.
  static func open(_ snapshot: StoredSnapshot, source: any ByteSource) async throws(LifeboatError) -> SnapshotContent {
    if let problem = snapshot.manifestProblem { throw .verification(problem) }
    return try await SnapshotContent.open(snapshot, source: snapshot.manifest == nil ? source : HashingSource(source))
  }

  /// Every check, in one read of the snapshot; `sink` gets the database's bytes as they are
  /// checked (a drill extracts it in the same read).
  func verify(
    _ content: SnapshotContent, sink: ([UInt8]) async throws(LifeboatError) -> Void = { _ in }
  ) async throws(LifeboatError) -> VerifyReport {
    let snapshot = content.snapshot
    var checks: [String] = []
    if snapshot.kind == .archive { checks.append("ZIP structure readable; entry \(content.entryPath ?? "")") }
    let digest = try await content.readDatabase(sink)
    if snapshot.kind == .archive { checks.append("CRC-32 and size of the snapshot entry") }
    try Self.requireTrailer(digest, snapshot)
    checks.append("etcd's SHA-256 trailer")
    if let stateSize = try await content.checkStateFile() {
      checks.append("state file entry (CRC-32, JSON, \(stateSize) bytes)")
    }
    var archiveSHA: String?
    if let manifest = snapshot.manifest {
      guard manifest.dbSize == digest.size else {
        throw .verification("\(snapshot.path): the database is \(digest.size) bytes, the manifest says \(manifest.dbSize)")
      }
      guard manifest.dbSHA256 == digest.sha256 else {
        throw .verification(
          "\(snapshot.path): the database SHA-256 is \(digest.sha256), the manifest says \(manifest.dbSHA256)")
      }
      checks.append("database SHA-256 matches the manifest")
      guard manifest.stateFile == content.hasStateFile else {
        throw .verification(
          "\(snapshot.path): the manifest says state file \(manifest.stateFile ? "present" : "absent"), the archive disagrees")
      }
      let whole = try await content.wholeSHA256()
      archiveSHA = whole.sha
      guard whole.size == manifest.archiveSize, whole.sha == manifest.archiveSHA256 else {
        throw .verification(
          "\(snapshot.path): the archive SHA-256 is \(whole.sha) (\(whole.size) bytes), the manifest says \(manifest.archiveSHA256) (\(manifest.archiveSize) bytes)")
      }
      checks.append("archive SHA-256 matches the manifest")
    }
    return VerifyReport(
      name: snapshot.name.value, path: snapshot.path, kind: snapshot.kind, dbSize: digest.size, dbSHA256: digest.sha256,
      archiveSHA256: archiveSHA, stateFile: content.hasStateFile, hasManifest: snapshot.manifest != nil, checks: checks)
  }

  static func requireSealed(
    sha: String, size: UInt64, _ encryption: Manifest.Encryption, _ snapshot: StoredSnapshot
  ) throws(LifeboatError) {
    guard sha == encryption.objectSHA256, size == encryption.objectSize else {
      throw .verification(
        "\(snapshot.path): the encrypted object's SHA-256 is \(sha) (\(size) bytes), the manifest says \(encryption.objectSHA256) (\(encryption.objectSize) bytes)")
    }
  }

  static func requireTrailer(_ digest: SnapshotDigest.Result, _ snapshot: StoredSnapshot) throws(LifeboatError) {
    switch digest.trailer {
    case .valid: return
    case .mismatch:
      throw .verification("\(snapshot.path): the etcd snapshot fails its SHA-256 trailer check (corrupt or truncated)")
    case .absent:
      throw .verification(
        "\(snapshot.path): the etcd snapshot has no SHA-256 trailer (\(digest.size) bytes; a copied db file, or truncated)")
    }
  }

}
