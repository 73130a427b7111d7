import LifeboatCore

/// A lock for async code: `run` bodies never overlap, and waiters go in arrival order. (An actor
/// alone does not serialize bodies that suspend.)
public actor AsyncLock {
  private var busy = false
  private var waiters: [CheckedContinuation<Void, Never>] = []

  public init() {}

  public func run<T: Sendable>(_ body: @Sendable () async throws(LifeboatError) -> T) async throws(LifeboatError) -> T {
    if busy {
      await withCheckedContinuation { waiters.append($0) }
    } else {
      busy = true
    }
    defer {
      if waiters.isEmpty { busy = false } else { waiters.removeFirst().resume() }
    }
    return try await body()
  }
}
