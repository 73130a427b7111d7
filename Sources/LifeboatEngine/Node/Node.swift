import Foundation
import LifeboatCore
import SnapshotStores

/// One etcd node, acted on directly (`LocalNode`) or through its agent (`RemoteNode`). Every
/// operation the cluster commands need; one conformance suite (TestSupport) runs against both.
/// Errors are `LifeboatError`s whose messages name the node.
public protocol Node: Sendable {
  /// The node's address in `cluster.yml`.
  var address: String { get }

  func health() async throws(LifeboatError) -> NodeHealth
  /// Free disk, restore tool, TLS material: what a restore needs, checked without changing anything.
  func preflight(dbSize: UInt64, archiveSize: UInt64) async throws(LifeboatError) -> NodePreflight

  // Snapshots in the node's snapshot directory.
  func listSnapshots() async throws(LifeboatError) -> [NodeSnapshot]
  func deleteSnapshot(_ name: SnapshotName) async throws(LifeboatError)
  /// Saves a one-time snapshot of the cluster (from a healthy member) into this node's snapshot
  /// directory, and uploads it to S3 when `upload` and the config has S3.
  func saveSnapshot(_ request: NodeSaveRequest) async throws(LifeboatError) -> NodeSaveReport
  /// Copies the snapshot `name` (archive and manifest) from the agent at `peer` (one of the
  /// config's agents) into this node's snapshot directory; the archive's SHA-256 must equal the
  /// manifest's. With `applyRetention` (a recurring run), the node then prunes its own directory.
  func copySnapshot(_ name: SnapshotName, from peer: String, applyRetention: Bool) async throws(LifeboatError) -> NodeSnapshot

  // Restore steps, in order; `id` names one restore on every node.
  func fetch(_ request: FetchRequest) async throws(LifeboatError) -> FetchReport
  /// The state file of the fetched archive, when it has one (never printed).
  func fetchedStateFile(_ id: String) async throws(LifeboatError) -> [UInt8]?
  func stage(_ request: StageRequest) async throws(LifeboatError)
  func stopEtcd() async throws(LifeboatError)
  /// Moves the data dir aside (kept, named with the restore's time) and the staged dir in.
  func swap(_ id: String) async throws(LifeboatError) -> SwapReport
  func startEtcd(quotaBackendBytes: Int64?) async throws(LifeboatError)
  /// Puts the old data dir back (stopping etcd first when there is something to move); does not start etcd (the caller
  /// starts every node only once every node is back: a member restarted on its old data while
  /// a peer still runs the restored data would be sent commit indexes its log never had, and
  /// etcd panics). Safe to call at any step, and twice.
  func rollback(_ id: String) async throws(LifeboatError) -> RollbackReport
  /// Removes the restore's downloads and staging leftovers (never the old data dir).
  func finish(_ id: String) async throws(LifeboatError)
}

public struct NodeHealth: Codable, Sendable, Equatable {
  public var address: String
  public var member: String
  public var runtime: String
  /// nil when the runtime cannot tell.
  public var etcdRunning: Bool?
  public var version: String
  /// The agent's recurring snapshots (filled in by the agent's `/healthz`).
  public var schedule: ScheduleState?
}

public struct NodePreflight: Codable, Sendable {
  public var address: String
  public var freeSnapshotBytes: UInt64
  public var freeDataBytes: UInt64
  /// Everything that stops a restore on this node; empty when it is ready.
  public var problems: [String]
}

public struct NodeSnapshot: Codable, Sendable, Equatable {
  public var name: String
  public var kind: StoredSnapshot.Kind
  public var size: UInt64
  public var archiveSHA256: String?
  public var dbSHA256: String?
  public var dbSize: UInt64?
  public var revision: Int64?
  public var created: Date
}

public struct NodeSaveRequest: Codable, Sendable {
  public var name: String?
  public var upload: Bool
  /// Snapshot this node's own member (no quorum: the others may not be reachable).
  public var ownMemberOnly: Bool?
  public init(name: String?, upload: Bool, ownMemberOnly: Bool = false) {
    self.name = name
    self.upload = upload
    self.ownMemberOnly = ownMemberOnly
  }
}

public struct NodeSaveReport: Codable, Sendable {
  public var snapshot: NodeSnapshot
  public var member: String
  public var endpoint: String
  public var noQuorum: Bool
  /// `s3://...` when uploaded.
  public var remote: String?
  /// Why the upload failed, when it did (the local archive is complete).
  public var uploadError: String?
}

/// Where a node gets the archive to restore.
public enum SnapshotOrigin: Codable, Sendable, Equatable {
  /// Its own snapshot directory.
  case local
  /// The S3 bucket of the cluster config.
  case s3
  /// The agent at this URL (`https://10.0.0.1:2382`), which fetched it first.
  case peer(String)
}

public struct FetchRequest: Codable, Sendable {
  public var id: String
  public var name: String
  public var origin: SnapshotOrigin
  /// What the fetched copy must match, when known (the manifest's, or the serving node's).
  public var expectedArchiveSHA256: String?
  public var expectedDBSHA256: String?
  public init(id: String, name: String, origin: SnapshotOrigin, expectedArchiveSHA256: String?, expectedDBSHA256: String?) {
    self.id = id
    self.name = name
    self.origin = origin
    self.expectedArchiveSHA256 = expectedArchiveSHA256
    self.expectedDBSHA256 = expectedDBSHA256
  }
}

public struct FetchReport: Codable, Sendable, Equatable {
  public var address: String
  public var archiveSize: UInt64
  public var archiveSHA256: String
  public var dbSize: UInt64
  public var dbSHA256: String
  /// etcd's SHA-256 trailer: `valid`, or `absent` for a db copied from a data dir.
  public var trailer: String
  /// The snapshot's revision, read from the db itself.
  public var revision: Int64
  public var hasStateFile: Bool
  /// The manifest, when the snapshot has one.
  public var manifest: Manifest?
}

public struct StageRequest: Codable, Sendable {
  public var id: String
  public var initialCluster: String
  public var token: String
  public init(id: String, initialCluster: String, token: String) {
    self.id = id
    self.initialCluster = initialCluster
    self.token = token
  }
}

public struct SwapReport: Codable, Sendable, Equatable {
  public var address: String
  /// Where the old data dir now is (nil when the node had none).
  public var oldDataDir: String?
}

public struct RollbackReport: Codable, Sendable, Equatable {
  public var address: String
  /// What was done, in order.
  public var actions: [String]
}
