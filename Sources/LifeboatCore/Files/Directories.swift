#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation

/// Creates `path` and its missing parents (like `mkdir -p`); new directories get `mode`.
/// Fails with a one-line storage error naming the component that is in the way. Returns the
/// directories it created, outermost first (`removeEmptyDirectories` takes them back).
@discardableResult
public func makeDirectories(_ path: String, mode: mode_t = 0o700) throws(LifeboatError) -> [String] {
  var info = stat()
  if stat(path, &info) == 0 {
    guard (info.st_mode & S_IFMT) == S_IFDIR else {
      throw .storage("cannot use \(path) as a directory: it is a file")
    }
    return []
  }
  if errno == ENOTDIR {
    try checkDirectoryCreatable(path)
  }
  var created: [String] = []
  let parent = parentDirectory(of: path)
  if parent != path && parent != "." && parent != "/" {
    created = try makeDirectories(parent, mode: mode)
  }
  if mkdir(path, mode) == 0 {
    created.append(path)
  } else if errno != EEXIST {
    throw .system("cannot create directory", path, errno: errno)
  }
  return created
}

/// Removes `directories` (as `makeDirectories` returned them), innermost first, each only if it
/// is empty: what a failed write created and left unused goes, anything holding a file stays.
public func removeEmptyDirectories(_ directories: [String]) {
  for directory in directories.reversed() where rmdir(directory) != 0 { return }
}

/// Whether `path` exists and is a directory.
public func isDirectory(_ path: String) -> Bool {
  var info = stat()
  return stat(path, &info) == 0 && (info.st_mode & S_IFMT) == S_IFDIR
}

/// Checks, without changing anything, that `path` is a writable directory or could be created:
/// the nearest existing ancestor must be a writable directory.
public func checkDirectoryCreatable(_ path: String) throws(LifeboatError) {
  var current = path
  while true {
    var info = stat()
    if stat(current, &info) == 0 {
      guard (info.st_mode & S_IFMT) == S_IFDIR else {
        throw .storage("cannot use \(path) as a directory: \(current) is a file")
      }
      guard access(current, W_OK | X_OK) == 0 else {
        throw .system("cannot write to directory", current, errno: errno)
      }
      return
    }
    let parent = parentDirectory(of: current)
    if parent == current { return }
    current = parent
  }
}

/// Size and modification time of `path` when it is a regular file; nil otherwise.
public func regularFileInfo(_ path: String) -> (size: UInt64, modified: Date)? {
  var info = stat()
  guard stat(path, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG else { return nil }
  let modified = Date(timeIntervalSince1970: Double(info.st_mtim.tv_sec) + Double(info.st_mtim.tv_nsec) / 1e9)
  return (UInt64(info.st_size), modified)
}
