import Synchronization

/// What an interrupt (Ctrl-C) does right now, for the command's signal handler to say: most
/// work stops and cleans up, but a restore past its first stop runs to its end (finished or
/// rolled back), since a half-done restore is the worst outcome.
public enum Interruption {
  private static let deferred = Mutex<String?>(nil)

  /// Why an interrupt is not acted on now, when it is not.
  public static var deferredReason: String? { deferred.withLock { $0 } }

  /// Runs `body` with interrupts deferred for `reason`.
  public static func deferring<T, E: Error>(_ reason: String, _ body: () async throws(E) -> T) async throws(E) -> T {
    deferred.withLock { $0 = reason }
    defer { deferred.withLock { $0 = nil } }
    return try await body()
  }
}
