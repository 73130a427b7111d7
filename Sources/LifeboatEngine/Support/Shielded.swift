import LifeboatCore

/// Runs `body` in a task of its own, so that cancelling the caller (Ctrl-C) does not cut it
/// short: cleanup, and a restore's steps past its first stop, always run to their end.
func shielded<T: Sendable>(
  _ body: @escaping @Sendable () async throws(LifeboatError) -> T
) async throws(LifeboatError) -> T {
  let task = Task { () async -> Result<T, LifeboatError> in
    do throws(LifeboatError) { return .success(try await body()) } catch { return .failure(error) }
  }
  return try await task.value.get()
}

func shielded<T: Sendable>(_ body: @escaping @Sendable () async -> T) async -> T {
  await Task { await body() }.value
}
