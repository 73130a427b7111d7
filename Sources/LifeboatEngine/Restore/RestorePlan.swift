import Foundation
import LifeboatCore

/// What the operator asked for.
public struct RestoreOptions: Sendable {
  public var name: SnapshotName
  /// Take the archive from the config's S3 bucket even when a node has it locally.
  public var fromS3 = false
  /// Keep the local state file even when the archive holds one.
  public var useLocalState = false
  /// Stop after printing the plan.
  public var dryRun = false
  /// The operator's age identity file (its text), for an encrypted S3 archive.
  public var ageIdentities: SecretBytes?
  public init(name: SnapshotName) { self.name = name }
}

/// Where the archive to restore is.
public enum RestoreSource: Sendable, Equatable {
  /// In the snapshot directory of the node at this address (which then serves it).
  case node(String)
  /// In the config's S3 bucket, at this `s3://` path (the first node downloads and serves it).
  case s3(String)

  /// How the serving node obtains it.
  var origin: SnapshotOrigin {
    switch self {
    case .node: .local
    case .s3: .s3
    }
  }

  public var description: String {
    switch self {
    case .node(let address): "local on \(address)"
    case .s3(let path): path
    }
  }
}

/// The resolved plan, printed before anything happens.
public struct RestorePlan: Sendable {
  public var id: String
  public var name: SnapshotName
  public var source: RestoreSource
  /// The node (address) that obtains the archive and serves it to the others.
  public var server: String
  public var members: [EtcdNode]
  public var runtime: String
  public var archiveSize: UInt64
  /// From the snapshot's manifest, when it has one (RKE archives have none).
  public var archiveSHA256: String?
  public var dbSHA256: String?
  public var dbSize: UInt64?
  public var revision: Int64?
  /// The operator's identity file, set when the archive is encrypted (age): the serving node
  /// gets it with its fetch.
  public var ageIdentities: SecretBytes?
  public var encrypted: Bool { ageIdentities != nil }

  public var lines: [String] {
    var lines = [
      "restore \(name) (id \(id))",
      "  from:    \(source.description)" + (encrypted ? " (age-encrypted: decrypted as the serving node downloads it)" : "")
        + (dbSHA256.map { ", revision \(revision ?? 0), db \(dbSize ?? 0) bytes, sha256 \($0)" }
          ?? " (no manifest: every node's copies must agree with the serving node's)"),
      "  served by the agent on \(server) to the others over mutual TLS",
      "  runtime: \(runtime)",
    ]
    for m in members { lines.append("  member \(m.memberName) on \(m.address): peer \(m.peerURL), data dir \(m.dataDir)") }
    return lines
  }
}

/// What a finished restore did.
public struct RestoreReport: Sendable {
  public var plan: RestorePlan
  public var revision: Int64
  public var hash: UInt32
  /// Where each node's old data dir is now.
  public var oldDataDirs: [String: String]
  /// The state file installed from the archive and where the old one went.
  public var stateFile: (installed: String, backup: String?)?
  /// Lifeboat lock keys removed after the restore.
  public var lockKeysRemoved: Int64
  /// Nodes whose lease or journal could not be removed after the good check (an agent that
  /// died then): the cluster is restored, but `recover` must finish the cleanup.
  public var cleanupLeft: [String] = []
}

/// The restore's typed state, one value per step reached (see `ClusterEngine.restore`).
enum RestoreState {
  /// Every node holds the verified database; the serving node's report comes first.
  struct Fetched: Sendable {
    var plan: RestorePlan
    var reports: [FetchReport]
    /// The archive's state file, read and checked on the serving node (nil: keep the local one).
    var stateFile: [UInt8]?
    var snapshotRevision: Int64 { reports[0].revision }
    var dbSize: UInt64 { reports[0].dbSize }
  }
  /// Every node restored the snapshot into its staging dir; nothing changed yet.
  struct Staged: Sendable { var fetched: Fetched }
  /// Every etcd is stopped: the point of no return is next.
  struct Stopped: Sendable { var staged: Staged }
  /// Every node runs on the staged data (old data dirs kept).
  struct Swapped: Sendable {
    var stopped: Stopped
    var oldDataDirs: [String: String]
  }
  /// The restored cluster is healthy, as planned, with equal hashes.
  struct Checked: Sendable {
    var swapped: Swapped
    var hash: UInt32
    var revision: Int64
    /// Nodes whose agent could not confirm (lost after the cluster check passed): left to `recover`.
    var unconfirmed: [String] = []
  }
}
