import Synchronization

extension Array where Element == UInt8 {
  /// `withUnsafeBytes` for bodies that throw `LifeboatError` (the standard one is `rethrows`).
  public func withBytes<R>(_ body: (UnsafeRawBufferPointer) throws(LifeboatError) -> R) throws(LifeboatError) -> R {
    let result: Result<R, LifeboatError> = withUnsafeBytes { buffer in
      do throws(LifeboatError) { return .success(try body(buffer)) } catch { return .failure(error) }
    }
    return try result.get()
  }
}


/// Runs `body`, then `cleanup` whether `body` returned or threw (an async `defer`).
public func withCleanup<R>(
  _ body: () async throws -> R, cleanup: () async -> Void
) async throws -> R {
  do {
    let result = try await body()
    await cleanup()
    return result
  } catch {
    await cleanup()
    throw error
  }
}

extension Task where Failure == Never {
  /// Waits for the task at most `limit`: true when it finished, false when it had not (it goes on
  /// in the background). For cleanup that must not hold a command for long, such as aborting an
  /// upload at a server that stopped answering.
  public func finishes(within limit: Duration) async -> Bool {
    let waiter = FirstAnswer()
    let task = self
    return await withCheckedContinuation { continuation in
      waiter.set(continuation)
      Task<Void, Never> {
        _ = await task.value
        waiter.answer(true)
      }
      Task<Void, Never> {
        try? await Task<Never, Never>.sleep(for: limit)
        waiter.answer(false)
      }
    }
  }
}

/// A continuation resumed by whichever answer comes first.
private final class FirstAnswer: Sendable {
  private let continuation = Mutex<CheckedContinuation<Bool, Never>?>(nil)
  func set(_ c: CheckedContinuation<Bool, Never>) { continuation.withLock { $0 = c } }
  func answer(_ value: Bool) { continuation.withLock { $0.take() }?.resume(returning: value) }
}
