/// The one error type that reaches the command line: a one-line message and the exit code
/// a script can rely on (the table is in the README, "Exit codes").
public struct LifeboatError: Error, CustomStringConvertible, Sendable, Equatable {
  /// What went wrong, coarsely; each kind has one exit code.
  public enum Kind: String, Sendable, Equatable, CaseIterable {
    /// A failure not covered by the other kinds. Exit code 1.
    case failure
    /// Bad flags, bad names, unreadable input files. Exit code 2.
    case usage
    /// The named snapshot does not exist where it was looked for. Exit code 3.
    case notFound
    /// A checksum, the etcd trailer or the archive structure did not check out. Exit code 4.
    case verification
    /// No usable etcd member (unreachable, unhealthy, alarm, TLS refused). Exit code 5.
    case unavailable
    /// Storage failed: disk full, permission denied, object store errors. Exit code 6.
    case storage
    /// A restore failed and every node was rolled back. Exit code 7.
    case restoreRolledBack
    /// A restore failed and rollback did not finish. Exit code 8.
    case restoreIncomplete
  }

  public var kind: Kind
  /// One line, naming what failed and where. Never holds secrets.
  public var message: String

  public init(_ kind: Kind, _ message: String) {
    self.kind = kind
    self.message = message
  }

  public var exitCode: Int32 { kind.exitCode }
  public var description: String { message }
}

extension LifeboatError.Kind {
  public var exitCode: Int32 {
    switch self {
    case .failure: 1
    case .usage: 2
    case .notFound: 3
    case .verification: 4
    case .unavailable: 5
    case .storage: 6
    case .restoreRolledBack: 7
    case .restoreIncomplete: 8
    }
  }
}

extension LifeboatError {
  public static func usage(_ message: String) -> Self { Self(.usage, message) }
  public static func notFound(_ message: String) -> Self { Self(.notFound, message) }
  public static func verification(_ message: String) -> Self { Self(.verification, message) }
  public static func unavailable(_ message: String) -> Self { Self(.unavailable, message) }
  public static func storage(_ message: String) -> Self { Self(.storage, message) }
  public static func failure(_ message: String) -> Self { Self(.failure, message) }
}
