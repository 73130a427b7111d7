#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import Foundation
import LifeboatCore

/// A snapshot directory on this host (RKE's default `/opt/rke/etcd-snapshots`). Writes go to
/// `<key>.part` (0600, exclusive, locked), are fsynced and renamed, and the directory is fsynced;
/// `.part` files are never listed.
public struct LocalStore: SnapshotStore {
  public let directory: String

  /// RKE's snapshot directory.
  public static let rkeDefault = "/opt/rke/etcd-snapshots"

  public init(directory: String) {
    self.directory = directory.count > 1 && directory.hasSuffix("/") ? String(directory.dropLast()) : directory
  }

  public var location: String { directory }

  public func path(_ key: String) -> String { directory + "/" + key }

  /// Fails, without creating anything, if the directory could not be created or written.
  public func checkWritable() async throws(LifeboatError) { try checkDirectoryCreatable(directory) }

  public func makeWriter(for key: String, contentType: String, replace: Bool) async throws(LifeboatError)
    -> any ObjectWriter
  {
    try Self.validate(key: key)
    let created = try makeDirectories(directory)
    do {
      // A write that fails takes back the directories made for it: a failed save leaves no trace.
      return LocalObjectWriter(
        file: try AtomicFile(finalPath: path(key), overwrite: replace, createdDirectories: created), key: key)
    } catch {
      removeEmptyDirectories(created)
      throw error
    }
  }

  public func read(
    _ key: String, range: Range<UInt64>?, _ body: ([UInt8]) async throws(LifeboatError) -> Void
  ) async throws(LifeboatError) {
    try Self.validate(key: key)
    let file = try ReadOnlyFile(path: path(key))
    let range = range ?? 0..<file.size
    guard range.upperBound <= file.size else {
      throw .verification("\(file.path) is truncated: \(file.size) bytes, \(range.upperBound) wanted")
    }
    try await file.stream(from: range.lowerBound, length: UInt64(range.count), chunkSize: 1 << 20, body)
  }

  public func stat(_ key: String) async throws(LifeboatError) -> StoredObject {
    try Self.validate(key: key)
    guard let object = Self.regularFile(key: key, path: path(key)) else {
      throw .notFound("\(path(key)) does not exist")
    }
    return object
  }

  public func list() async throws(LifeboatError) -> [StoredObject] {
    guard isDirectory(directory) else {
      if FileManager.default.fileExists(atPath: directory) { throw .usage("\(directory) is not a directory") }
      return []
    }
    let names: [String]
    do { names = try FileManager.default.contentsOfDirectory(atPath: directory) } catch {
      throw .storage("cannot list \(directory): \(error.localizedDescription)")
    }
    return names.sorted().compactMap { name in
      if name.hasPrefix(".") || name.hasSuffix(".part") { return nil }
      return Self.regularFile(key: name, path: path(name))
    }
  }

  /// `.part` files a killed writer left behind: no writer holds their lock (a save in progress
  /// does), so nothing will ever complete them.
  public func abandonedParts() -> [StoredObject] {
    let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
    return names.sorted().compactMap { name in
      guard name.hasSuffix(".part"), !name.hasPrefix("."), Self.isAbandoned(path(name)) else { return nil }
      return Self.regularFile(key: name, path: path(name))
    }
  }

  /// Removes `<key>.part` when a killed writer left it; false when there is none (or a writer
  /// still holds it).
  public func removeAbandonedPart(of key: String) throws(LifeboatError) -> Bool {
    try Self.validate(key: key)
    let part = path(key + ".part")
    guard FileManager.default.fileExists(atPath: part), Self.isAbandoned(part) else { return false }
    if unlink(part) != 0 && errno != ENOENT { throw .system("cannot delete", part, errno: errno) }
    try? syncDirectory(of: part)
    return true
  }

  /// Whether another writer holds `<key>.part` right now (a save in progress; an abandoned
  /// `.part` is not one).
  public func isBeingWritten(_ key: String) -> Bool {
    let part = path(key + ".part")
    return FileManager.default.fileExists(atPath: part) && !Self.isAbandoned(part)
  }

  static func isAbandoned(_ path: String) -> Bool {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { return false }
    defer { close(fd) }
    guard flock(fd, LOCK_EX | LOCK_NB) == 0 else { return false }
    flock(fd, LOCK_UN)
    return true
  }

  public func delete(_ key: String) async throws(LifeboatError) {
    try Self.validate(key: key)
    if unlink(path(key)) != 0 && errno != ENOENT {
      throw .system("cannot delete", path(key), errno: errno)
    }
    try? syncDirectory(of: path(key))
  }

  static func regularFile(key: String, path: String) -> StoredObject? {
    guard let info = regularFileInfo(path) else { return nil }
    return StoredObject(key: key, size: info.size, modified: info.modified)
  }
}

/// Writes one local object through an `AtomicFile`.
final class LocalObjectWriter: ObjectWriter, @unchecked Sendable {
  private let file: AtomicFile
  private let key: String

  init(file: AtomicFile, key: String) {
    self.file = file
    self.key = key
  }

  func write(_ bytes: [UInt8]) async throws(LifeboatError) {
    try file.write(bytes)
  }

  func finish() async throws(LifeboatError) -> StoredObject {
    try file.commit()
    if let problem = file.directorySyncProblem {
      // The file is in place; only its survival of a power cut right now is in doubt.
      FileHandle.standardError.write(Data("lifeboat: warning: \(problem)\n".utf8))
    }
    return StoredObject(key: key, size: file.bytesWritten, modified: Date())
  }

  func abort() async {
    file.discard()
  }
}
