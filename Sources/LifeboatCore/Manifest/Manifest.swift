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
    do {
      return try decoder.decode(Manifest.self, from: Data(bytes))
    } catch {
      throw .verification("\(path) is not a valid Lifeboat manifest: \(Self.describe(error))")
    }
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
