import Foundation

/// `<name>.manifest.json`: what Lifeboat knows about a snapshot it made, written beside the
/// archive after the archive is complete (so a manifest always describes a whole archive).
/// `list` and `inspect` read it without opening the archive.
public struct Manifest: Codable, Sendable, Equatable {
  /// Identifies the file; bumped when fields change meaning.
  public var format: Int = 1
  public var name: SnapshotName
  public var createdAt: Date
  /// The member the snapshot was streamed from.
  public var member: Member
  /// Key-value store revision from `Maintenance.Status` just before the stream: a lower bound
  /// of the snapshot's revision.
  public var revision: Int64
  /// Size of the snapshot file (the bbolt db and etcd's 32-byte trailer).
  public var dbSize: UInt64
  /// SHA-256 of the snapshot file, trailer included: what `sha256sum` prints for the extracted
  /// `/backup/<name>`.
  public var dbSHA256: String
  /// SHA-256 and size of `<name>.zip` as written.
  public var archiveSHA256: String
  public var archiveSize: UInt64
  public var compression: Compression
  /// Whether the archive holds `/etc/kubernetes/<name>.rkestate`.
  public var stateFile: Bool
  /// True when no member had a leader at save time (quorum lost): the snapshot may miss the
  /// last writes.
  public var noQuorum: Bool = false
  public var lifeboatVersion: String = LifeboatVersion.current
  /// Set when the archive this manifest sits beside is encrypted (`<name>.zip.age`): then
  /// `archiveSHA256`/`archiveSize` are the plaintext archive's, these the stored object's.
  /// Never a key: recipients are public.
  public var encryption: Encryption?

  public struct Encryption: Codable, Sendable, Equatable {
    /// `age-encryption.org/v1`.
    public var format: String
    /// The X25519 recipients (`age1…`) it was encrypted to.
    public var recipients: [String]
    /// SHA-256 and size of `<name>.zip.age` as stored.
    public var objectSHA256: String
    public var objectSize: UInt64

    public init(format: String = "age-encryption.org/v1", recipients: [String], objectSHA256: String, objectSize: UInt64) {
      self.format = format
      self.recipients = recipients
      self.objectSHA256 = objectSHA256
      self.objectSize = objectSize
    }
  }

  public struct Member: Codable, Sendable, Equatable {
    public var name: String
    /// Member ID, hexadecimal as etcdctl prints it.
    public var id: String
    public var clusterID: String
    public var endpoint: String
    public var etcdVersion: String

    public init(name: String, id: String, clusterID: String, endpoint: String, etcdVersion: String) {
      self.name = name
      self.id = id
      self.clusterID = clusterID
      self.endpoint = endpoint
      self.etcdVersion = etcdVersion
    }
  }

  public init(
    name: SnapshotName, createdAt: Date, member: Member, revision: Int64, dbSize: UInt64, dbSHA256: String,
    archiveSHA256: String, archiveSize: UInt64, compression: Compression, stateFile: Bool, noQuorum: Bool
  ) {
    self.name = name
    self.createdAt = createdAt
    self.member = member
    self.revision = revision
    self.dbSize = dbSize
    self.dbSHA256 = dbSHA256
    self.archiveSHA256 = archiveSHA256
    self.archiveSize = archiveSize
    self.compression = compression
    self.stateFile = stateFile
    self.noQuorum = noQuorum
  }

  public func encoded() throws(LifeboatError) -> [UInt8] {
    do {
      return [UInt8](try Self.encoder.encode(self)) + [0x0a]
    } catch {
      throw .failure("cannot encode the manifest of \(name): \(error)")
    }
  }

  public static func decode(_ bytes: [UInt8], path: String) throws(LifeboatError) -> Manifest {
    let manifest: Manifest
    do {
      manifest = try decoder.decode(Manifest.self, from: Data(bytes))
    } catch {
      throw .verification("\(path) is not a valid Lifeboat manifest: \(Self.describe(error))")
    }
    if let problem = manifest.rangeProblem {
      throw .verification("\(path) is not a valid Lifeboat manifest: \(problem)")
    }
    return manifest
  }

  /// The largest size a manifest may claim (1 PiB): far above etcd's 8 GiB recommended maximum,
  /// far below where adding sizes could overflow.
  public static let maxSize: UInt64 = 1 << 50

  /// Every number is checked before any arithmetic uses it (a manifest comes from a node's disk
  /// or from S3, never trusted): the first field out of range, or nil.
  var rangeProblem: String? {
    if dbSize > Self.maxSize { return "dbSize \(dbSize) is out of range (at most \(Self.maxSize))" }
    if archiveSize > Self.maxSize { return "archiveSize \(archiveSize) is out of range (at most \(Self.maxSize))" }
    if let encryption {
      if encryption.objectSize > Self.maxSize { return "encryption.objectSize is out of range (at most \(Self.maxSize))" }
      let hex = encryption.objectSHA256
      if hex.count != 64 || !hex.allSatisfy({ $0.isHexDigit && !$0.isUppercase }) {
        return "encryption.objectSHA256 is not a SHA-256 (64 lowercase hex digits)"
      }
    }
    if revision < 0 { return "revision \(revision) is negative" }
    if format < 1 { return "format \(format) is not a Lifeboat manifest format" }
    for (field, value) in [("dbSHA256", dbSHA256), ("archiveSHA256", archiveSHA256)]
    where value.count != 64 || !value.allSatisfy({ $0.isHexDigit && !$0.isUppercase }) {
      return "\(field) is not a SHA-256 (64 lowercase hex digits)"
    }
    return nil
  }

  private static func describe(_ error: any Error) -> String {
    switch error {
    case DecodingError.keyNotFound(let key, _): "missing field \(key.stringValue)"
    case DecodingError.typeMismatch(_, let context), DecodingError.valueNotFound(_, let context),
      DecodingError.dataCorrupted(let context):
      "\(context.codingPath.map(\.stringValue).joined(separator: ".")): \(context.debugDescription)"
    default: "\(error)"
    }
  }

  static var encoder: JSONEncoder {
    let e = JSONEncoder()
    e.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
    e.dateEncodingStrategy = .iso8601
    return e
  }

  static var decoder: JSONDecoder {
    let d = JSONDecoder()
    d.dateDecodingStrategy = .iso8601
    return d
  }
}
