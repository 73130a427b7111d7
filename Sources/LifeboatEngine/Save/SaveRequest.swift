import Foundation
import LifeboatCore
import SnapshotStores

/// Everything `lifeboat snapshot save` needs, checked before anything is written.
public struct SaveRequest: Sendable {
  public var connection: EtcdConnection
  /// The local snapshot directory the archive is written to.
  public var store: LocalStore
  /// A remote store (S3) that receives the same archive in the same pass, and its manifest last.
  public var remote: (any SnapshotStore)?
  /// The snapshot's name; nil gives RKE's one-time name, `rke_etcd_snapshot_<time>`.
  public var name: SnapshotName?
  public var naming: SnapshotNaming
  /// A cluster state file (`cluster.rkestate`) to store in the archive.
  public var stateFilePath: String?
  public var compression: Compression
  /// age recipients the remote copy is encrypted to (`<name>.zip.age`); empty: stored plain.
  public var remoteRecipients: [AgeRecipient] = []
  /// Encrypt the local archive too (`<name>.zip.age`): one encryption, the same bytes locally and
  /// in the bucket. Needs `remoteRecipients`.
  public var encryptLocal = false

  public init(
    connection: EtcdConnection, store: LocalStore, remote: (any SnapshotStore)? = nil, name: SnapshotName? = nil,
    naming: SnapshotNaming = .init(), stateFilePath: String? = nil, compression: Compression = .fast
  ) {
    self.connection = connection
    self.store = store
    self.remote = remote
    self.name = name
    self.naming = naming
    self.stateFilePath = stateFilePath
    self.compression = compression
  }
}

/// What happens during a save, for progress displays and logs.
public enum SaveEvent: Sendable {
  /// The member the snapshot is streamed from; `noQuorum` warns that no member had a leader.
  case memberSelected(SelectedMember, name: SnapshotName)
  /// Bytes received from etcd so far, and the member's db size (an estimate of the total).
  case progress(received: UInt64, expected: UInt64)
  /// The archive is complete under its final name.
  case archived(path: String)
  /// The archive and its manifest are complete in the remote store.
  case uploaded(location: String)
}

/// A finished save.
public struct SaveResult: Sendable {
  public var manifest: Manifest
  public var archivePath: String
  public var manifestPath: String
  public var member: SelectedMember
  public var elapsed: Duration
  /// Where the remote copy is (`s3://bucket/folder/<name>.zip[.age]`), when the upload succeeded.
  public var remoteArchive: String?
  /// Why the upload failed, when it did: the local archive is complete all the same.
  public var uploadError: LifeboatError?
}
