/// The one error type that reaches the command line: a one-line message and the exit code
/// a script can rely on (the table is in the README, "Exit codes"), plus a typed cause (which
/// node, which step, what underneath) so that code decides on fields, never on message text.
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
    /// Another restore is in progress, or one was interrupted and needs `restore --recover`. Exit code 9.
    case restoreInProgress
  }

  public var kind: Kind
  /// One line, naming what failed and where. Never holds secrets.
  public var message: String
  /// The node (its address in cluster.yml) where it happened, once known.
  public var node: String?
  /// The step or operation that failed (`fetch`, `swap`, `copy`, ...), once known.
  public var step: String?
  /// What lies underneath, for code that must tell causes apart.
  public var underlying: Underlying?

  /// Causes that code branches on.
  public enum Underlying: String, Codable, Sendable, Equatable {
    /// The connection was refused or timed out: the peer is down or unreachable.
    case unreachable
    /// An S3 object is under Object Lock (retention or legal hold): kept, reported, not a failure.
    case locked
    /// TLS failed: certificate, CA or host name.
    case tls
    /// A remote answered with an error of its own (an agent's error body).
    case remote
    /// A child process exited non-zero, was killed, or ran past its time limit.
    case process
    /// The operation was cancelled.
    case cancelled
    /// An agent that is stopping refused new work before starting it: another node may take it.
    case stopping
  }

  public init(_ kind: Kind, _ message: String, node: String? = nil, step: String? = nil, underlying: Underlying? = nil) {
    self.kind = kind
    self.message = message
    self.node = node
    self.step = step
    self.underlying = underlying
  }

  /// The same error, attributed to `node` and `step` where not yet known: the message gains
  /// `<step> on <node>: ` (or the part not yet there) once, so attribution happens where it is
  /// known and never twice.
  public func on(_ node: String, step: String? = nil) -> LifeboatError {
    var error = self
    switch (error.node == nil, step != nil && error.step == nil) {
    case (true, true): error.message = "\(step!) on \(node): \(error.message)"
    case (true, false): error.message = "\(node): \(error.message)"
    case (false, true):
      // `<node>: ` put there by an earlier attribution becomes `<step> on <node>: `.
      let head = "\(error.node!): "
      error.message =
        error.message.hasPrefix(head)
        ? "\(step!) on \(error.node!): " + error.message.dropFirst(head.count) : "\(step!): \(error.message)"
    case (false, false): break
    }
    error.node = error.node ?? node
    error.step = error.step ?? step
    return error
  }

  /// The same error, saying which nodes still hold what the restore left (their lease and
  /// journal stay for `restore --recover`); unchanged when `left` is empty.
  public func leaving(_ left: [LifeboatError]) -> LifeboatError {
    guard !left.isEmpty else { return self }
    var error = self
    let nodes = left.map { $0.node ?? "?" }.joined(separator: ", ")
    error.message += "; not cleaned up on \(nodes): bring the agent back and run `lifeboat snapshot restore --recover`"
    return error
  }

  /// The same error with a message prefix (context such as "restore refused, nothing changed").
  public func prefixed(_ prefix: String) -> LifeboatError {
    var error = self
    error.message = prefix + ": " + message
    return error
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
    case .restoreInProgress: 9
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
