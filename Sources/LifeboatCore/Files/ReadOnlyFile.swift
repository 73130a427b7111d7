#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// A file opened for reading at explicit offsets (`pread`), closed on deinit.
public final class ReadOnlyFile: @unchecked Sendable {
  public let path: String
  public let size: UInt64
  private let fd: Int32

  public init(path: String) throws(LifeboatError) {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else {
      let code = errno
      if code == ENOENT { throw .notFound("\(path) does not exist") }
      throw .system("cannot open", path, errno: code)
    }
    var info = stat()
    guard fstat(fd, &info) == 0 else {
      let code = errno
      close(fd)
      throw .system("cannot stat", path, errno: code)
    }
    self.fd = fd
    self.path = path
    self.size = UInt64(info.st_size)
  }

  deinit { close(fd) }

  /// Reads up to `count` bytes at `offset` into `buffer`; returns how many were read (0 at end).
  public func read(at offset: UInt64, into buffer: UnsafeMutableRawBufferPointer) throws(LifeboatError) -> Int {
    var done = 0
    while done < buffer.count {
      let n = pread(fd, buffer.baseAddress! + done, buffer.count - done, off_t(offset) + off_t(done))
      if n < 0 {
        if errno == EINTR { continue }
        throw .system("cannot read", path, errno: errno)
      }
      if n == 0 { break }
      done += n
    }
    return done
  }

  /// Reads exactly `count` bytes at `offset`, or fails naming the file.
  public func read(at offset: UInt64, count: Int) throws(LifeboatError) -> [UInt8] {
    var bytes: [UInt8] = []
    try fill(&bytes, at: offset, count: count)
    return bytes
  }

  /// Makes `bytes` exactly the `count` bytes at `offset` (its storage reused when it is large
  /// enough and not shared), or fails naming the file.
  public func fill(_ bytes: inout [UInt8], at offset: UInt64, count: Int) throws(LifeboatError) {
    if bytes.count > count {
      bytes.removeLast(bytes.count - count)
    } else if bytes.count < count {
      bytes.append(contentsOf: repeatElement(0, count: count - bytes.count))
    }
    let result: Result<Int, LifeboatError> = bytes.withUnsafeMutableBytes { buffer in
      do throws(LifeboatError) { return .success(try read(at: offset, into: buffer)) } catch { return .failure(error) }
    }
    let n = try result.get()
    guard n == count else { throw .verification("\(path) is truncated: expected \(count) bytes at offset \(offset)") }
  }
}
