import Foundation
import LifeboatCore
import SnapshotStores

/// What `lifeboat snapshot inspect` prints.
public struct InspectReport: Sendable, Codable {
  public var name: String
  public var path: String
  public var kind: StoredSnapshot.Kind
  public var fileSize: UInt64
  public var modified: Date
  public var manifest: Manifest?
  public var dbSize: UInt64
  public var dbSHA256: String
  public var trailer: String
  public var stateFile: Bool
  /// Read from the database itself, the figures `etcdctl snapshot status` reports.
  public var status: SnapshotStatus
  /// Kubernetes objects and other keys, when asked (`--objects`).
  public var objects: SnapshotObjects?
}

/// Reads a snapshot's facts: the manifest (when Lifeboat made it), the archive's entries and
/// hashes, and the database's own revision, key count and etcd hash, read natively from the
/// bbolt file (no etcdctl needed: real RKE hosts have none). A legacy file is read in place; an
/// archive's database is extracted to a temporary file (0600, removed afterwards), because bbolt
/// is a B+tree that needs random access.
public struct SnapshotInspector: Sendable {
  public var temporaryDirectory: String

  public init(temporaryDirectory: String = NSTemporaryDirectory()) {
    self.temporaryDirectory = temporaryDirectory
  }

  public func inspect(
    _ snapshot: StoredSnapshot, in catalog: SnapshotCatalog, objects countObjects: Bool = false
  ) async throws(LifeboatError) -> InspectReport {
    if let problem = snapshot.manifestProblem { throw .verification(problem) }
    let content = try await SnapshotContent.open(snapshot, in: catalog)
    let digest: SnapshotDigest.Result
    let status: SnapshotStatus
    var objects: SnapshotObjects?
    if snapshot.kind == .legacy, let file = content.source as? ReadOnlyFile {
      digest = try await content.readDatabase()
      status = try SnapshotStatus.read(path: file.path)
      if countObjects { objects = try SnapshotObjects.read(path: file.path) }
    } else {
      // A scratch copy (0600, exclusive), never published: read from its `.part` name and removed.
      let file = try AtomicFile(finalPath: temporaryDirectory + "/lifeboat-inspect-\(UUID().uuidString).db")
      defer { file.discard() }
      digest = try await content.readDatabase { (chunk) throws(LifeboatError) in try file.write(chunk) }
      status = try SnapshotStatus.read(path: file.partPath)
      if countObjects { objects = try SnapshotObjects.read(path: file.partPath) }
    }
    return InspectReport(
      name: snapshot.name.value, path: snapshot.path, kind: snapshot.kind, fileSize: snapshot.size,
      modified: snapshot.object.modified, manifest: snapshot.manifest, dbSize: digest.size, dbSHA256: digest.sha256,
      trailer: digest.trailer.rawValue, stateFile: content.hasStateFile, status: status, objects: objects)
  }
}
