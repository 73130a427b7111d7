import Foundation
import LifeboatCore
import LifeboatEngine
import Testing

/// Child processes: exit status, bounded output (the tail is kept), time limits and
/// cancellation that really stop the child.
@Suite struct ProcessRunnerTests {
  @Test func exitStatusAndOutput() async throws {
    let result = try await ProcessRunner.run("/bin/sh", ["-c", "echo out; echo err >&2; exit 3"])
    #expect(result.status == 3)
    #expect(result.stdout == "out\n")
    #expect(result.stderr == "err\n")
    #expect(result.lastLine == "out")
  }

  @Test func environmentIsAddedToTheInheritedOne() async throws {
    let result = try await ProcessRunner.run("/bin/sh", ["-c", "echo $LIFEBOAT_TEST_VALUE-$PATH"], environment: ["LIFEBOAT_TEST_VALUE": "x"])
    #expect(result.stdout.hasPrefix("x-/"), "\(result.stdout)")
  }

  @Test func aChattyChildKeepsOnlyTheTailOfItsOutput() async throws {
    let result = try await ProcessRunner.run(
      "/bin/sh", ["-c", "yes a | head -c 5000000; echo the-last-line"], outputLimit: 1000)
    #expect(result.status == 0)
    #expect(result.stdout.utf8.count == 1000)
    #expect(result.lastLine == "the-last-line")
  }

  @Test func aSignalIsReportedAs128PlusItsNumber() async throws {
    let result = try await ProcessRunner.run("/bin/sh", ["-c", "kill -9 $$"])
    #expect(result.status == 128 + 9)
  }

  static func pid(in file: String) async throws -> pid_t {
    for _ in 0..<200 {
      if let text = try? String(contentsOfFile: file, encoding: .utf8), let pid = pid_t(text.trimmingCharacters(in: .whitespacesAndNewlines)) {
        return pid
      }
      try await Task.sleep(for: .milliseconds(10))
    }
    throw LifeboatError.failure("the child never wrote its PID")
  }

  static func gone(_ pid: pid_t) async throws -> Bool {
    for _ in 0..<200 {
      if kill(pid, 0) != 0 { return true }
      try await Task.sleep(for: .milliseconds(50))
    }
    return false
  }

  @Test func aChildPastItsTimeLimitIsStoppedAndTheCallFails() async throws {
    let file = FileManager.default.temporaryDirectory.appendingPathComponent("pid-\(UUID().uuidString)").path
    defer { try? FileManager.default.removeItem(atPath: file) }
    do {
      _ = try await ProcessRunner.run("/bin/sh", ["-c", "echo $$ > \(file); exec sleep 60"], timeout: .milliseconds(500))
      Issue.record("a 60 s sleep finished within 0.5 s")
    } catch {
      #expect(error.underlying == .process)
      #expect(error.message.contains("did not finish within"))
    }
    #expect(try await Self.gone(try await Self.pid(in: file)), "the child was stopped")
  }

  @Test func cancellingTheCallerStopsTheChild() async throws {
    let file = FileManager.default.temporaryDirectory.appendingPathComponent("pid-\(UUID().uuidString)").path
    defer { try? FileManager.default.removeItem(atPath: file) }
    let task = Task { () async throws(LifeboatError) -> ProcessResult in
      try await ProcessRunner.run("/bin/sh", ["-c", "echo $$ > \(file); exec sleep 60"])
    }
    let pid = try await Self.pid(in: file)
    task.cancel()
    let result = await task.result
    guard case .failure(let failure) = result, let error = failure as? LifeboatError else { Issue.record("a cancelled call returned"); return }
    #expect(error.underlying == .cancelled || error.underlying == .process, "\(error.message)")
    #expect(try await Self.gone(pid), "the child was stopped")
  }

  @Test func aMissingExecutableIsAOneLineFailure() async throws {
    await #expect(throws: LifeboatError.self) { _ = try await ProcessRunner.run("/nonexistent/tool", []) }
  }
}
