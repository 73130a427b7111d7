import Foundation
import LifeboatCore

/// What a snapshot holds in Kubernetes terms, read offline from its bbolt file: the latest
/// revision of every key (deletions applied), counted by resource and namespace from the
/// `/registry/...` keys, and keys outside `/registry/` by their first path component.
///
/// etcd's `key` bucket holds one entry per revision: the bucket key is the revision (8 bytes
/// main, `_`, 8 bytes sub, big-endian; a deletion's tombstone ends in `t`), the value an
/// `mvccpb.KeyValue`. Walked in revision order, a key lives when its last entry is not a
/// tombstone. Memory: the counts, and 8 bytes per live key (a 64-bit hash of the key, to know
/// whether a later entry replaces or adds one), never the keys or values themselves.
public struct SnapshotObjects: Sendable, Codable, Equatable {
  /// One resource in one namespace (`nil` for cluster-scoped objects).
  public struct Count: Sendable, Codable, Equatable {
    /// `configmaps`, `deployments`, `apiextensions.k8s.io/customresourcedefinitions`, ...
    public var resource: String
    public var namespace: String?
    public var count: Int
  }

  /// Kubernetes objects by resource and namespace, sorted.
  public var kubernetes: [Count]
  /// Keys outside `/registry/`, by their first path component (`/lifeboat/`), sorted.
  public var other: [String: Int]
  /// Live keys in all.
  public var total: Int
  /// The snapshot's revision (the highest in the `key` bucket).
  public var revision: Int64

  /// Objects of `resource` in every namespace.
  public func count(of resource: String) -> Int { kubernetes.filter { $0.resource == resource }.reduce(0) { $0 + $1.count } }

  /// Counts keys by group, as `read` and the drill's read of a live etcd do.
  public struct Counter: Sendable {
    var groups: [Group: Int] = [:]
    public init() {}

    public mutating func add(_ key: Data, _ delta: Int = 1) { groups[Group(key), default: 0] += delta }

    public func result(total: Int, revision: Int64) -> SnapshotObjects {
      var kubernetes: [Count] = []
      var other: [String: Int] = [:]
      for (group, count) in groups where count > 0 {
        switch group {
        case .kubernetes(let resource, let namespace): kubernetes.append(Count(resource: resource, namespace: namespace, count: count))
        case .other(let prefix): other[prefix] = count
        }
      }
      kubernetes.sort { ($0.resource, $0.namespace ?? "") < ($1.resource, $1.namespace ?? "") }
      return SnapshotObjects(kubernetes: kubernetes, other: other, total: total, revision: revision)
    }
  }

  /// etcd's `HashKV` at the snapshot's revision, computed offline as etcd computes it
  /// (`mvcc.store.HashByRev`): CRC-32C over the bucket name `key`, then every (revision,
  /// KeyValue) of the bucket in order, except that entries at or below the compaction revision
  /// count only when they are the latest revision of a live key.
  public var hashKV: UInt32 = 0
  /// The revision a member restored from the snapshot starts at: the highest in the `key`
  /// bucket, or the compaction revision when that is higher (what a compaction removed), and at
  /// least 1 (an empty etcd).
  public var servedRevision: Int64 = 1
  /// The compaction revision recorded in the `meta` bucket (0 when never compacted).
  public var compactRevision: Int64 = 0

  /// A revision as etcd stores it: main and sub.
  struct Revision: Hashable, Comparable {
    var main: Int64
    var sub: Int64
    init(_ bytes: ArraySlice<UInt8>) {
      main = Int64(bitPattern: bytes.prefix(8).reduce(0) { $0 << 8 | UInt64($1) })
      sub = Int64(bitPattern: bytes.dropFirst(9).prefix(8).reduce(0) { $0 << 8 | UInt64($1) })
    }
    static func < (a: Revision, b: Revision) -> Bool { (a.main, a.sub) < (b.main, b.sub) }
  }

  /// Reads the bbolt file at `path`: one pass to count and to find each key's latest revision
  /// and the compaction revision, one more for `HashKV`.
  public static func read(path: String) throws(LifeboatError) -> SnapshotObjects {
    let reader = try BoltReader(file: try ReadOnlyFile(path: path))
    // The latest revision of each key (by a 64-bit hash of the key) and whether it deletes it.
    var latest: [Int: (revision: Revision, tombstone: Bool)] = [:]
    var counter = Counter()
    var live = 0
    var revision: Int64 = 0
    var compacted: Int64 = 0
    var bucket = ""
    try reader.forEachBucket { name in
      bucket = String(decoding: name, as: UTF8.self)
    } entry: { (bucketKey, value) throws(LifeboatError) in
      if bucket == "meta" {
        // scheduledCompactRev wins over finishedCompactRev: a restored member finishes it.
        if bucketKey.elementsEqual("scheduledCompactRev".utf8) || (bucketKey.elementsEqual("finishedCompactRev".utf8) && compacted == 0) {
          if value.count >= 8 { compacted = max(compacted, Revision(value).main) }
        }
        return
      }
      guard bucket == "key" else { return }
      guard bucketKey.count == 17 || bucketKey.count == 18 else {
        throw .verification("\(path): a key in bucket \"key\" is not a revision (\(bucketKey.count) bytes)")
      }
      let rev = Revision(bucketKey)
      revision = rev.main
      let tombstone = bucketKey.count == 18 && bucketKey.last == UInt8(ascii: "t")
      guard let key = Self.keyField(of: value) else {
        throw .verification("\(path): the value at revision \(rev.main) is not an etcd KeyValue")
      }
      var hasher = Hasher()
      key.withUnsafeBytes { hasher.combine(bytes: $0) }
      let id = hasher.finalize()
      let wasLive = latest[id].map { !$0.tombstone } ?? false
      latest[id] = (rev, tombstone)
      if tombstone, wasLive {
        counter.add(Data(key), -1)
        live -= 1
      } else if !tombstone, !wasLive {
        counter.add(Data(key))
        live += 1
      }
    }
    var objects = counter.result(total: live, revision: revision)
    objects.compactRevision = compacted
    objects.servedRevision = max(1, revision, compacted)
    // etcd's Keep(rev): the latest revision of every live key.
    let keep = Set(latest.values.filter { !$0.tombstone }.map(\.revision))
    latest = [:]
    var crc = CRC32C()
    crc.update(Array("key".utf8)[...])
    var inKey = false
    try reader.forEachBucket { name in
      inKey = name.elementsEqual("key".utf8)
    } entry: { (bucketKey, value) throws(LifeboatError) in
      guard inKey else { return }
      let rev = Revision(bucketKey)
      if rev.main <= compacted, !keep.isEmpty, !keep.contains(rev) { return }
      crc.update(bucketKey)
      crc.update(value)
    }
    objects.hashKV = crc.value
    return objects
  }

  /// The `key` field (1) of a serialized `mvccpb.KeyValue`, found by walking the protobuf wire
  /// format without decoding (or copying) the value, which is most of the bytes: decoding every
  /// whole KeyValue with SwiftProtobuf made reading an 8 GiB snapshot copy it twice over. nil
  /// when the bytes are not well-formed protobuf or have no key.
  public static func keyField(of message: ArraySlice<UInt8>) -> ArraySlice<UInt8>? {
    var i = message.startIndex
    func varint() -> UInt64? {
      var result: UInt64 = 0
      var shift: UInt64 = 0
      while i < message.endIndex, shift < 64 {
        let byte = message[i]
        i += 1
        result |= UInt64(byte & 0x7F) << shift
        if byte & 0x80 == 0 { return result }
        shift += 7
      }
      return nil
    }
    while i < message.endIndex {
      guard let tag = varint(), tag >> 3 > 0 else { return nil }
      switch tag & 7 {
      case 0: guard varint() != nil else { return nil }
      case 1: guard message.endIndex - i >= 8 else { return nil }; i += 8
      case 5: guard message.endIndex - i >= 4 else { return nil }; i += 4
      case 2:
        guard let length = varint(), length <= UInt64(message.endIndex - i) else { return nil }
        let field = message[i..<(i + Int(length))]
        if tag >> 3 == 1 { return field }
        i += Int(length)
      default: return nil
      }
    }
    return nil
  }

  /// Where a key is counted.
  enum Group: Hashable {
    case kubernetes(resource: String, namespace: String?)
    case other(prefix: String)

    /// `/registry/<resource>/<namespace>/<name>`, `/registry/<resource>/<name>` (cluster-scoped),
    /// and with an API group first (`/registry/apiextensions.k8s.io/customresourcedefinitions/<name>`,
    /// custom resources `/registry/<group>/<plural>/<namespace>/<name>`): a first component with
    /// a dot is a group.
    init(_ key: Data) {
      let text = String(decoding: key, as: UTF8.self)
      guard text.hasPrefix("/registry/") else {
        let parts = text.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: true)
        self = .other(prefix: text.hasPrefix("/") && !parts.isEmpty ? "/\(parts[0])/" : "(no leading /)")
        return
      }
      var parts = text.dropFirst("/registry/".count).split(separator: "/", omittingEmptySubsequences: false).map(String.init)
      guard !parts.isEmpty, !parts[0].isEmpty else {
        self = .other(prefix: "/registry/")
        return
      }
      var resource = parts.removeFirst()
      if resource.contains("."), parts.count >= 2 { resource += "/" + parts.removeFirst() }
      // Kubernetes keeps services and their endpoints as /registry/services/{specs,endpoints}/...
      if resource == "services", parts.count >= 2, ["specs", "endpoints"].contains(parts[0]) {
        resource = parts.removeFirst() == "specs" ? "services" : "endpoints"
      }
      self = .kubernetes(resource: resource, namespace: parts.count >= 2 ? parts[0] : nil)
    }
  }
}
