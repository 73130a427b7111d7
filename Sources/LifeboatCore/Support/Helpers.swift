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
