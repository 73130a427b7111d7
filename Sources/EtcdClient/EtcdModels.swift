/// What `Maintenance.Status` says about one member.
public struct EtcdMemberStatus: Sendable, Equatable {
  public var memberID: UInt64
  public var clusterID: UInt64
  /// The member's etcd version, e.g. "3.4.23".
  public var version: String
  /// Physical size of the backend database, in bytes.
  public var dbSize: Int64
  public var dbSizeInUse: Int64
  /// The leader this member believes in; 0 when it has none (no quorum).
  public var leader: UInt64
  public var raftIndex: UInt64
  public var raftTerm: UInt64
  public var raftAppliedIndex: UInt64
  /// Alarms and other problems the member reports (etcd 3.4+), e.g. "NOSPACE".
  public var errors: [String]
  public var isLearner: Bool
  /// The key-value store revision when the status was taken.
  public var revision: Int64

  public var hasLeader: Bool { leader != 0 }
  public var isLeader: Bool { leader == memberID }
}

/// A member of the cluster as `Cluster.MemberList` reports it.
public struct EtcdMember: Sendable, Equatable {
  public var id: UInt64
  /// Empty for a member that was added but never started.
  public var name: String
  public var peerURLs: [String]
  public var clientURLs: [String]
  public var isLearner: Bool
}

/// One key and its value, as `KV.Range` returns it.
public struct EtcdKeyValue: Sendable, Equatable {
  public var key: [UInt8]
  public var value: [UInt8]
  public var createRevision: Int64
  public var modRevision: Int64
  public var version: Int64
}

/// What a finished snapshot stream delivered.
public struct EtcdSnapshotStreamSummary: Sendable, Equatable {
  /// Bytes received, etcd's 32-byte trailer included.
  public var bytes: UInt64
  /// The revision in the first response header (0 on etcd 3.4, which does not send it).
  public var headerRevision: Int64
  /// Whether the last message said no bytes remain (etcd sets `remaining_bytes` on each one).
  public var complete: Bool
}

/// Formats member and cluster IDs the way etcdctl prints them.
public func etcdIDString(_ id: UInt64) -> String { String(id, radix: 16) }
