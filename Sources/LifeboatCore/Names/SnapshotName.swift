import Foundation

/// A validated snapshot name: the `<name>` of `<name>.zip`, of the archive entry
/// `/backup/<name>` and of the S3 key `[folder/]<name>.zip`.
///
/// A name is one path component: never empty, never `.` or `..`, no `/`, `\`, NUL or control
/// characters, at most 200 bytes (room for `.manifest.json` and `.zip.part` within the usual
/// 255-byte file name limit). Names are compared exactly: `myname` never matches `myname1`.
public struct SnapshotName: Hashable, Sendable, Comparable, CustomStringConvertible, Codable {
  public let value: String

  /// The longest name accepted, in UTF-8 bytes.
  public static let maxLength = 200

  public init(_ value: String) throws(LifeboatError) {
    if let problem = Self.problem(with: value) {
      throw .usage("invalid snapshot name \(Self.quoted(value)): \(problem)")
    }
    self.value = value
  }

  /// Why `value` is not a valid name, or nil when it is.
  public static func problem(with value: String) -> String? {
    if value.isEmpty { return "it is empty" }
    if value == "." || value == ".." { return "it is a relative directory" }
    if value.utf8.count > maxLength { return "it is longer than \(maxLength) bytes" }
    if value.contains("/") || value.contains("\\") {
      return "it must be a single file name, without / or \\"
    }
    if value.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) {
      return "it contains control characters"
    }
    if value.hasPrefix("-") { return "it must not start with -" }
    // Swift compares strings by canonical equivalence, file systems and S3 by bytes: `é` and
    // `e` + U+0301 would be one name here and two files there. Only the composed form (NFC).
    let composed = value.precomposedStringWithCanonicalMapping
    if !composed.utf8.elementsEqual(value.utf8) {
      return "it is not in Unicode's composed form (NFC); write it as \(quoted(composed))"
    }
    for suffix in [".zip", ".part", ".manifest.json"] where value.hasSuffix(suffix) {
      return "leave out the \(suffix) extension"
    }
    return nil
  }

  public var description: String { value }
  public static func < (lhs: Self, rhs: Self) -> Bool { lhs.value < rhs.value }

  /// File name of the archive: `<name>.zip`.
  public var archiveFileName: String { value + ".zip" }
  /// The archive encrypted with age (an S3 copy with `age_recipients`): `<name>.zip.age`.
  public var encryptedArchiveFileName: String { value + ".zip.age" }
  /// Both forms an archive of this name may take: plain, then encrypted.
  public var archiveFileNames: [String] { [archiveFileName, encryptedArchiveFileName] }
  /// The name part of an archive's key (`<name>.zip` or `<name>.zip.age`); nil for other keys.
  public static func archiveStem(of key: String) -> String? {
    for suffix in [".zip.age", ".zip"] where key.hasSuffix(suffix) { return String(key.dropLast(suffix.count)) }
    return nil
  }
  /// File name of Lifeboat's manifest: `<name>.manifest.json` (never `<name>.json`, which RKE
  /// would take for the snapshot itself).
  public var manifestFileName: String { value + ".manifest.json" }
  /// Archive entry holding the etcd snapshot, as RKE writes it.
  public var snapshotEntryPath: String { "/backup/" + value }
  /// Archive entry holding the cluster state file, as RKE writes it.
  public var stateEntryPath: String { "/etc/kubernetes/" + value + ".rkestate" }

  public init(from decoder: any Decoder) throws {
    let raw = try decoder.singleValueContainer().decode(String.self)
    do { self = try SnapshotName(raw) } catch {
      throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: error.message))
    }
  }

  public func encode(to encoder: any Encoder) throws {
    var container = encoder.singleValueContainer()
    try container.encode(value)
  }

  /// A user's argument, with control characters made visible, for error messages.
  static func quoted(_ raw: String) -> String {
    var out = "\""
    for scalar in raw.unicodeScalars {
      if scalar.properties.generalCategory == .control {
        out += String(format: "\\x%02x", scalar.value)
      } else {
        out.unicodeScalars.append(scalar)
      }
    }
    return out + "\""
  }
}

extension SnapshotName {
  /// Parses a name given on the command line to find an existing snapshot: a trailing
  /// `.zip` (as shown by `ls`) is accepted and dropped.
  public static func lookup(_ raw: String) throws(LifeboatError) -> SnapshotName {
    if raw.hasSuffix(".zip"), raw.count > 4 {
      return try SnapshotName(String(raw.dropLast(4)))
    }
    return try SnapshotName(raw)
  }
}
