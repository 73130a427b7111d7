#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Creates `path` and its missing parents (like `mkdir -p`); new directories get `mode`.
/// Fails with a one-line storage error naming the component that is in the way.
public func makeDirectories(_ path: String, mode: mode_t = 0o700) throws(LifeboatError) {
  var info = stat()
  if stat(path, &info) == 0 {
    guard (info.st_mode & S_IFMT) == S_IFDIR else {
      throw .storage("cannot use \(path) as a directory: it is a file")
    }
    return
  }
  let parent = parentDirectory(of: path)
  if parent != path && parent != "." && parent != "/" {
    try makeDirectories(parent, mode: mode)
  }
  if mkdir(path, mode) != 0 && errno != EEXIST {
    throw .system("cannot create directory", path, errno: errno)
  }
}

/// Whether `path` exists and is a directory.
public func isDirectory(_ path: String) -> Bool {
  var info = stat()
  return stat(path, &info) == 0 && (info.st_mode & S_IFMT) == S_IFDIR
}
