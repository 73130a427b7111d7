#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// The text of an `errno` value, e.g. "No space left on device".
public func errnoDescription(_ code: Int32) -> String {
  String(cString: strerror(code))
}

extension LifeboatError {
  /// A storage error for a failed system call on `path`, with the system's reason.
  public static func system(
    _ action: String, _ path: String, errno code: Int32, kind: Kind = .storage
  ) -> Self {
    Self(kind, "\(action) \(path): \(errnoDescription(code))")
  }
}
