import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// A file written under `<final>.part` and published under its final name only when complete:
/// write, `fsync`, `rename`, `fsync` of the directory. Until `commit()`, nothing exists under the
/// final name; `discard()` (or deinit without commit) removes the `.part` file.
///
/// The `.part` file is created exclusively with mode 0600 and locked (`flock`), so two writers of
/// the same name never share it; a `.part` left by a crashed run (no lock held) is replaced.
public final class AtomicFile: @unchecked Sendable {
  public let finalPath: String
  public let partPath: String
  private var fd: Int32
  private var state: State = .open
  private let overwrite: Bool
  /// Directories made for this file (as `makeDirectories` returned them): taken back, while
  /// empty, when the file is discarded or cannot be published.
  private let createdDirectories: [String]
  public private(set) var bytesWritten: UInt64 = 0
  /// Set when the file was published but the directory could not be synced afterwards (the
  /// file exists; only its survival of a power cut right now is in doubt).
  public private(set) var directorySyncProblem: String?

  private enum State { case open, committed, discarded }

  /// Creates `<finalPath>.part`. Without `overwrite`, fails if `finalPath` already exists, now
  /// or when publishing (Lifeboat never overwrites a snapshot). Fails if another writer holds
  /// the `.part` file. `createdDirectories`: what was made to hold it, taken back with it.
  public init(
    finalPath: String, mode: mode_t = 0o600, overwrite: Bool = false, createdDirectories: [String] = []
  ) throws(LifeboatError) {
    self.finalPath = finalPath
    self.partPath = finalPath + ".part"
    self.overwrite = overwrite
    self.createdDirectories = createdDirectories
    if !overwrite, access(finalPath, F_OK) == 0 {
      throw .usage("\(finalPath) already exists; choose another name")
    }
    var attempts = 0
    while true {
      let fd = open(partPath, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode)
      if fd >= 0 {
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
          close(fd)
          throw .storage("cannot lock \(partPath)")
        }
        // Between our open and our lock another process may have taken the name over (and
        // unlinked our file): only keep the lock on the file that is really at `partPath`.
        var mine = stat()
        var there = stat()
        guard fstat(fd, &mine) == 0, stat(partPath, &there) == 0, mine.st_ino == there.st_ino,
          mine.st_dev == there.st_dev
        else {
          close(fd)
          guard attempts < 3 else { throw .storage("\(partPath) is being written by another process") }
          attempts += 1
          continue
        }
        fchmod(fd, mode)  // the umask must not widen or narrow it
        self.fd = fd
        Self.unfinished.withLock { $0[partPath] = createdDirectories }
        return
      }
      let code = errno
      guard code == EEXIST, attempts < 3 else { throw .system("cannot create", partPath, errno: code) }
      attempts += 1
      // A .part exists: another writer holds its lock, or a crashed run left it behind.
      let other = open(partPath, O_RDONLY | O_CLOEXEC)
      if other >= 0 {
        defer { close(other) }
        if flock(other, LOCK_EX | LOCK_NB) != 0 {
          throw .usage("\(partPath) is being written by another process")
        }
        unlink(partPath)
      }
    }
  }

  deinit {
    if state == .open { discard() }
  }

  /// The `.part` files of this process not yet committed or discarded, with the directories
  /// made for each.
  private static let unfinished = Mutex<[String: [String]]>([:])

  /// Removes every `.part` file this process is writing, and the directories made for it while
  /// empty: for a command that quits at once (a second Ctrl-C) without its cleanup running.
  public static func removeUnfinished() {
    for (path, directories) in unfinished.withLock({ $0 }) {
      unlink(path)
      removeEmptyDirectories(directories)
    }
  }

  public func write(_ bytes: UnsafeRawBufferPointer) throws(LifeboatError) {
    precondition(state == .open)
    var done = 0
    while done < bytes.count {
      let n = systemWrite(fd, bytes.baseAddress! + done, bytes.count - done)
      if n < 0 {
        if errno == EINTR { continue }
        throw .system("cannot write", partPath, errno: errno)
      }
      done += n
    }
    bytesWritten += UInt64(bytes.count)
  }

  public func write(_ bytes: [UInt8]) throws(LifeboatError) {
    try bytes.withBytes { (buffer) throws(LifeboatError) in try write(buffer) }
  }

  /// Flushes the data to disk and publishes the file under its final name.
  public func commit() throws(LifeboatError) {
    precondition(state == .open)
    guard fsync(fd) == 0 else {
      let code = errno
      discard()
      throw .system("cannot sync", partPath, errno: code)
    }
    close(fd)
    fd = -1
    defer { Self.unfinished.withLock { _ = $0.removeValue(forKey: partPath) } }
    if overwrite {
      if rename(partPath, finalPath) != 0 {
        let code = errno
        drop()
        throw .system("cannot rename \(partPath) to", finalPath, errno: code)
      }
    } else {
      // link(2) fails if the final name exists: publishing never replaces a file that
      // appeared while this one was being written.
      if link(partPath, finalPath) != 0 {
        let code = errno
        drop()
        if code == EEXIST { throw .usage("\(finalPath) appeared while it was being written; nothing was replaced") }
        throw .system("cannot publish \(partPath) as", finalPath, errno: code)
      }
      unlink(partPath)
    }
    state = .committed
    do { try syncDirectory(of: finalPath) } catch { directorySyncProblem = error.message }
  }

  /// Removes the `.part` file; nothing is left behind.
  public func discard() {
    guard state == .open else { return }
    state = .discarded
    if fd >= 0 { close(fd) }
    fd = -1
    drop()
  }

  /// The `.part` file and the directories made for it (while empty) go; the file is done.
  private func drop() {
    state = .discarded
    unlink(partPath)
    removeEmptyDirectories(createdDirectories)
    Self.unfinished.withLock { _ = $0.removeValue(forKey: partPath) }
  }

  /// Writes a whole small file atomically.
  public static func write(_ bytes: [UInt8], to path: String, mode: mode_t = 0o600, overwrite: Bool = true)
    throws(LifeboatError)
  {
    let file = try AtomicFile(finalPath: path, mode: mode, overwrite: overwrite)
    do {
      try file.write(bytes)
      try file.commit()
    } catch {
      file.discard()
      throw error
    }
  }
}

/// `fsync` of the directory that holds `path`, so a rename in it survives a crash.
public func syncDirectory(of path: String) throws(LifeboatError) {
  let directory = parentDirectory(of: path)
  let fd = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
  guard fd >= 0 else { throw .system("cannot open directory", directory, errno: errno) }
  defer { close(fd) }
  guard fsync(fd) == 0 else { throw .system("cannot sync directory", directory, errno: errno) }
}

/// The directory part of `path` (`.` when there is none).
public func parentDirectory(of path: String) -> String {
  guard let slash = path.lastIndex(of: "/") else { return "." }
  if slash == path.startIndex { return "/" }
  return String(path[..<slash])
}

private func systemWrite(_ fd: Int32, _ buffer: UnsafeRawPointer, _ count: Int) -> Int {
  write(fd, buffer, count)
}
