import Foundation

/// A snapshot found in a local snapshot directory.
public struct LocalSnapshot: Sendable {
  public enum Kind: String, Sendable, Codable {
    /// `<name>.zip`, made by Lifeboat (with a manifest) or by RKE (without).
    case archive
    /// A bare, unzipped `<name>` snapshot file, as older RKE versions kept them.
    case legacy
  }

  public var name: SnapshotName
  public var kind: Kind
  public var path: String
  public var size: UInt64
  public var modified: Date
  public var manifest: Manifest?
  /// Why the manifest beside the archive could not be used, if it could not.
  public var manifestProblem: String?
}

/// The snapshots kept in one directory (RKE's default `/opt/rke/etcd-snapshots`):
/// `<name>.zip` with an optional `<name>.manifest.json`, and legacy bare snapshot files.
/// `.part` files (saves in progress or interrupted) are never listed.
public struct LocalSnapshotDirectory: Sendable {
  public let path: String

  /// RKE's snapshot directory.
  public static let rkeDefault = "/opt/rke/etcd-snapshots"

  public init(path: String) {
    self.path = path.count > 1 && path.hasSuffix("/") ? String(path.dropLast()) : path
  }

  public func archivePath(_ name: SnapshotName) -> String { path + "/" + name.archiveFileName }
  public func manifestPath(_ name: SnapshotName) -> String { path + "/" + name.manifestFileName }
  public func legacyPath(_ name: SnapshotName) -> String { path + "/" + name.value }

  /// Creates the directory (mode 0700) if needed.
  public func create() throws(LifeboatError) { try makeDirectories(path) }

  /// Fails, without creating anything, if the directory could not be created or written.
  public func checkCreatable() throws(LifeboatError) { try checkDirectoryCreatable(path) }

  /// Every snapshot in the directory, sorted by name. A missing directory holds none.
  public func list() throws(LifeboatError) -> [LocalSnapshot] {
    guard isDirectory(path) else {
      if FileManager.default.fileExists(atPath: path) { throw .usage("\(path) is not a directory") }
      return []
    }
    let names: [String]
    do { names = try FileManager.default.contentsOfDirectory(atPath: path) } catch {
      throw .storage("cannot list \(path): \(error.localizedDescription)")
    }
    var found: [LocalSnapshot] = []
    for file in names.sorted() {
      if file.hasSuffix(".part") || file.hasSuffix(".manifest.json") || file.hasPrefix(".") { continue }
      if file.hasSuffix(".zip") {
        guard let name = try? SnapshotName(String(file.dropLast(4))) else { continue }
        if let snapshot = archive(name) { found.append(snapshot) }
      } else if let name = try? SnapshotName(file), let snapshot = legacy(name) {
        found.append(snapshot)
      }
    }
    return found
  }

  /// The snapshot named exactly `name`: `<name>.zip`, else a legacy `<name>` file.
  public func find(_ name: SnapshotName) throws(LifeboatError) -> LocalSnapshot {
    if let snapshot = archive(name) ?? legacy(name) { return snapshot }
    throw .notFound("snapshot \(name) not found in \(path)")
  }

  private func archive(_ name: SnapshotName) -> LocalSnapshot? {
    let file = archivePath(name)
    guard let attributes = regularFileAttributes(file) else { return nil }
    var snapshot = LocalSnapshot(
      name: name, kind: .archive, path: file, size: attributes.size, modified: attributes.modified)
    let manifestFile = manifestPath(name)
    if let data = FileManager.default.contents(atPath: manifestFile) {
      do {
        let manifest = try Manifest.decode([UInt8](data), path: manifestFile)
        if manifest.name == name {
          snapshot.manifest = manifest
        } else {
          snapshot.manifestProblem = "\(manifestFile) describes \(manifest.name), not \(name)"
        }
      } catch {
        snapshot.manifestProblem = error.message
      }
    }
    return snapshot
  }

  private func legacy(_ name: SnapshotName) -> LocalSnapshot? {
    let file = legacyPath(name)
    guard let attributes = regularFileAttributes(file), Self.looksLikeBoltDatabase(file) else { return nil }
    return LocalSnapshot(name: name, kind: .legacy, path: file, size: attributes.size, modified: attributes.modified)
  }

  private func regularFileAttributes(_ file: String) -> (size: UInt64, modified: Date)? {
    guard let attributes = try? FileManager.default.attributesOfItem(atPath: file),
      attributes[.type] as? FileAttributeType == .typeRegular
    else { return nil }
    let size = (attributes[.size] as? NSNumber)?.uint64Value ?? 0
    return (size, attributes[.modificationDate] as? Date ?? Date(timeIntervalSince1970: 0))
  }

  /// bbolt's first meta page: a 16-byte page header, then the magic 0xED0CDAED (little endian).
  public static func looksLikeBoltDatabase(_ file: String) -> Bool {
    guard let handle = try? ReadOnlyFile(path: file), handle.size >= 20,
      let head = try? handle.read(at: 16, count: 4)
    else { return false }
    return head == [0xED, 0xDA, 0x0C, 0xED]
  }
}
