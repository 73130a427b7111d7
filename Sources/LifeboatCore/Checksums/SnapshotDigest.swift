import Crypto

/// Hashes an etcd snapshot stream in one pass and checks its integrity trailer.
///
/// etcd's `Maintenance.Snapshot` stream is a bbolt database followed by 32 bytes: the SHA-256
/// of everything before them. This type holds back the last 32 bytes seen so far, hashes the
/// rest, and at the end compares the held-back bytes with that hash. It also yields the SHA-256
/// of the whole file, trailer included (what `sha256sum` prints for the extracted snapshot), from
/// the same pass: the hash state before the trailer is copied and extended with it.
public struct SnapshotDigest: Sendable {
  /// The size of etcd's trailer: one SHA-256.
  public static let trailerSize = 32

  private var hasher = SHA256()
  private var held: [UInt8] = []
  public private(set) var byteCount: UInt64 = 0

  public init() {
    held.reserveCapacity(Self.trailerSize * 2)
  }

  public mutating func update(_ bytes: UnsafeRawBufferPointer) {
    byteCount += UInt64(bytes.count)
    let keep = Self.trailerSize
    if bytes.count >= keep {
      if !held.isEmpty { held.withUnsafeBytes { hasher.update(bufferPointer: $0) } }
      hasher.update(bufferPointer: UnsafeRawBufferPointer(rebasing: bytes[0..<(bytes.count - keep)]))
      held.removeAll(keepingCapacity: true)
      held.append(contentsOf: bytes[(bytes.count - keep)...])
    } else {
      held.append(contentsOf: bytes)
      if held.count > keep {
        let spill = held.count - keep
        held.withUnsafeBytes { hasher.update(bufferPointer: UnsafeRawBufferPointer(rebasing: $0[0..<spill])) }
        held.removeFirst(spill)
      }
    }
  }

  public mutating func update(_ bytes: [UInt8]) {
    bytes.withUnsafeBytes { update($0) }
  }

  /// The result of hashing a complete snapshot file.
  public struct Result: Sendable, Equatable {
    /// SHA-256 of the whole file, trailer included, as lowercase hex.
    public var sha256: String
    /// Total size in bytes, trailer included.
    public var size: UInt64
    /// Whether the file has etcd's trailer at all (size is 32 more than a multiple of 512,
    /// the rule `etcdctl snapshot restore` uses) and whether it matches.
    public var trailer: TrailerState
  }

  public enum TrailerState: String, Sendable, Equatable {
    case valid
    case mismatch
    case absent
  }

  public func finalize() -> Result {
    var whole = hasher
    let body = hasher.finalize()
    held.withUnsafeBytes { whole.update(bufferPointer: $0) }
    let sha = whole.finalize().hexString
    let trailer: TrailerState
    if held.count < Self.trailerSize || byteCount % 512 != UInt64(Self.trailerSize) {
      trailer = .absent
    } else {
      trailer = Array(body) == held ? .valid : .mismatch
    }
    return Result(sha256: sha, size: byteCount, trailer: trailer)
  }
}
