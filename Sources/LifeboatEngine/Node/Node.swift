import Foundation
import LifeboatCore
import SnapshotStores

/// One etcd node, acted on directly (`LocalNode`) or through its agent (`RemoteNode`): what ONE
/// node does, and nothing that spans nodes (workflows over several nodes are `ClusterEngine`'s).
/// One conformance suite (TestSupport) runs against both implementations, and `FakeNode`
/// (TestSupport) stands in for it in the workflows' unit tests.
/// Errors are `LifeboatError`s attributed to the node (`error.node`).
public protocol Node: Sendable {
  /// The node's address in `cluster.yml`.
  var address: String { get }

  // Health.
  func health() async throws(LifeboatError) -> NodeHealth
  /// Free disk, restore tool, TLS material: what a restore needs, checked without changing anything.
  func preflight(dbSize: UInt64, archiveSize: UInt64) async throws(LifeboatError) -> NodePreflight

  // Snapshot files in the node's snapshot directory.
  func listSnapshots() async throws(LifeboatError) -> [NodeSnapshot]
  /// The archive (or legacy file) of a snapshot and its manifest (nil when it has none), to read.
  func openSnapshot(_ name: SnapshotName) async throws(LifeboatError) -> (archive: any ByteSource, manifest: [UInt8]?)
  /// Saves a one-time snapshot of the cluster (from a healthy member) into this node's snapshot
  /// directory, and uploads it to S3 when `upload` and the config has S3.
  func saveSnapshot(_ request: NodeSaveRequest) async throws(LifeboatError) -> NodeSaveReport
  /// Writes the snapshot `name` (archive and manifest) read from the agent at `peer` (one of the
  /// config's agents) into this node's snapshot directory; the archive's SHA-256 must equal the
  /// manifest's. With `pruneAfter` (recurring runs), the node then applies the retention policy
  /// to its own directory, and only to it.
  func receiveSnapshot(_ name: SnapshotName, from peer: String, pruneAfter: Bool) async throws(LifeboatError) -> NodeSnapshot
  /// Deletes a snapshot: manifest first, then the archive.
  func deleteSnapshot(_ name: SnapshotName) async throws(LifeboatError)
  /// Re-reads a snapshot in full and checks everything it promises (`snapshot verify`).
  func verifySnapshot(_ name: SnapshotName) async throws(LifeboatError) -> VerifyReport

  // Its etcd.
  func stopEtcd() async throws(LifeboatError)
  func startEtcd(quotaBackendBytes: Int64?) async throws(LifeboatError)

  // Restore steps on this node, in order; `id` names one restore on every node.
  /// Obtains the archive (from its directory, S3 or a peer), unzips and hashes the database in
  /// the same pass as it arrives, and checks it; the report carries the archive's state file
  /// when `request.wantStateFile`.
  func fetch(_ request: FetchRequest) async throws(LifeboatError) -> FetchReport
  func stage(_ request: StageRequest) async throws(LifeboatError)
  /// Moves the data dir aside (kept, named with the restore's id) and the staged dir in.
  func swap(_ id: String) async throws(LifeboatError) -> SwapReport
  /// Puts the old data dir back (stopping etcd first when there is something to move); does not
  /// start etcd (the caller starts every node only once every node is back: a member restarted
  /// on its old data while a peer still runs the restored data would be sent commit indexes its
  /// log never had, and etcd panics). Safe to call at any step, and twice.
  func rollback(_ id: String) async throws(LifeboatError) -> RollbackReport
  /// Removes the restore's downloads and staging leftovers (never the old data dir, never the
  /// journal).
  func finish(_ id: String) async throws(LifeboatError)
  /// After the cluster check: this node's etcd serves from its data dir (checked in /proc).
  func confirmRestored(_ id: String) async throws(LifeboatError)

  // One restore at a time, and what a restore left.
  /// Takes the restore lease (again, for the same id, is fine); `.restoreInProgress` naming the
  /// restore that holds it otherwise, or that was interrupted here.
  func takeLease(_ lease: RestoreLease) async throws(LifeboatError)
  /// Releases the lease of `id` and removes its journal: the restore or its recovery is over.
  func releaseLease(_ id: String) async throws(LifeboatError)
  /// The lease, the journals and the etcd really serving: what recovery decides from.
  func restoreStatus() async throws(LifeboatError) -> NodeRestoreStatus
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
  /// The agent's scheduled drills (filled in by the agent's `/healthz`).
  public var drill: DrillState?
  /// The etcd process serving the member (found by its client port), when one is.
  public var etcdProcess: EtcdProcess?
  /// Set when that process serves from a directory other than the data dir.
  public var dataDirProblem: String?
  /// A restore holding this node, or interrupted on it: one line.
  public var restore: String?
  /// The identity of the snapshot directory (a random id in its `.lifeboat-dir-id`): nodes that
  /// report the same one share the directory (a shared mount, as RKE's docs warn).
  public var snapshotDirID: String?
  /// The bucket this agent uploads to and where its keys come from (`CredentialSource`, never a
  /// key), or why it cannot reach it; nil without `s3backupconfig`.
  public var s3: String?
  /// What this agent's saves encrypt (its cluster.yml as read when it started); nil: nothing.
  public var encryption: String?

  public init(
    address: String, member: String, runtime: String, etcdRunning: Bool? = nil, version: String,
    schedule: ScheduleState? = nil, etcdProcess: EtcdProcess? = nil, dataDirProblem: String? = nil, restore: String? = nil,
    snapshotDirID: String? = nil, s3: String? = nil, encryption: String? = nil
  ) {
    self.snapshotDirID = snapshotDirID
    self.s3 = s3
    self.encryption = encryption
    self.address = address
    self.member = member
    self.runtime = runtime
    self.etcdRunning = etcdRunning
    self.version = version
    self.etcdProcess = etcdProcess
    self.dataDirProblem = dataDirProblem
    self.restore = restore
    self.schedule = schedule
  }
}

public struct NodePreflight: Codable, Sendable {
  public var address: String
  public var freeSnapshotBytes: UInt64
  public var freeDataBytes: UInt64
  /// Everything that stops a restore on this node; empty when it is ready.
  public var problems: [String]

  public init(
    address: String, freeSnapshotBytes: UInt64, freeDataBytes: UInt64, problems: [String]
  ) {
    self.address = address
    self.freeSnapshotBytes = freeSnapshotBytes
    self.freeDataBytes = freeDataBytes
    self.problems = problems
  }
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
  /// Why the manifest beside the archive cannot be used, when it cannot (never read as "none").
  public var manifestProblem: String?
  /// The copy is encrypted with age (`<name>.zip.age`, `encryption.encrypt_local`).
  public var encrypted: Bool?

  public init(
    name: String, kind: StoredSnapshot.Kind, size: UInt64, archiveSHA256: String? = nil, dbSHA256: String? = nil,
    dbSize: UInt64? = nil, revision: Int64? = nil, created: Date, manifestProblem: String? = nil
  ) {
    self.manifestProblem = manifestProblem
    self.name = name
    self.kind = kind
    self.size = size
    self.archiveSHA256 = archiveSHA256
    self.dbSHA256 = dbSHA256
    self.dbSize = dbSize
    self.revision = revision
    self.created = created
  }
}

public struct NodeSaveRequest: Codable, Sendable {
  public var name: String?
  public var upload: Bool
  /// Snapshot this node's own member (no quorum: the others may not be reachable).
  public var ownMemberOnly: Bool?
  /// The archive's compression (default: the config's `lifeboat.compression`, else fast).
  public var compression: Compression?
  public init(name: String?, upload: Bool, ownMemberOnly: Bool = false, compression: Compression? = nil) {
    self.name = name
    self.upload = upload
    self.ownMemberOnly = ownMemberOnly
    self.compression = compression
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

  public init(
    snapshot: NodeSnapshot, member: String, endpoint: String, noQuorum: Bool, remote: String? = nil,
    uploadError: String? = nil
  ) {
    self.snapshot = snapshot
    self.member = member
    self.endpoint = endpoint
    self.noQuorum = noQuorum
    self.remote = remote
    self.uploadError = uploadError
  }
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
  /// Return the archive's state file with the report (the serving node, unless --use-local-state).
  public var wantStateFile: Bool
  /// The operator's age identity file, for an encrypted S3 archive: travels over mutual TLS for
  /// this request only, held in memory, never logged or written.
  public var ageIdentities: SecretBytes?
  public init(
    id: String, name: String, origin: SnapshotOrigin, expectedArchiveSHA256: String?, expectedDBSHA256: String?,
    wantStateFile: Bool = false, ageIdentities: SecretBytes? = nil
  ) {
    self.ageIdentities = ageIdentities
    self.id = id
    self.name = name
    self.origin = origin
    self.expectedArchiveSHA256 = expectedArchiveSHA256
    self.expectedDBSHA256 = expectedDBSHA256
    self.wantStateFile = wantStateFile
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
  /// The archive's state file (checked: a JSON object), when asked for and present. Secret.
  public var stateFile: SecretBytes?

  public init(
    address: String, archiveSize: UInt64, archiveSHA256: String, dbSize: UInt64, dbSHA256: String, trailer: String,
    revision: Int64, hasStateFile: Bool, manifest: Manifest? = nil, stateFile: SecretBytes? = nil
  ) {
    self.address = address
    self.archiveSize = archiveSize
    self.archiveSHA256 = archiveSHA256
    self.dbSize = dbSize
    self.dbSHA256 = dbSHA256
    self.trailer = trailer
    self.revision = revision
    self.hasStateFile = hasStateFile
    self.manifest = manifest
    self.stateFile = stateFile
  }
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

  public init(
    address: String, oldDataDir: String? = nil
  ) {
    self.address = address
    self.oldDataDir = oldDataDir
  }
}

public struct RollbackReport: Codable, Sendable, Equatable {
  public var address: String
  /// What was done, in order.
  public var actions: [String]

  public init(
    address: String, actions: [String]
  ) {
    self.address = address
    self.actions = actions
  }
}
