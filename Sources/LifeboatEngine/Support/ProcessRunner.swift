import Foundation
import LifeboatCore
import Subprocess

#if canImport(System)
  import System
#else
  import SystemPackage
#endif

/// What a finished command printed and how it ended.
public struct ProcessResult: Sendable {
  /// The exit status; 128 + the signal number when a signal ended it.
  public var status: Int32
  /// The last `outputLimit` bytes of standard output and standard error.
  public var stdout: String
  public var stderr: String

  /// The last line the command printed (stderr first), for one-line error messages.
  public var lastLine: String {
    (stderr + stdout).split(whereSeparator: \.isNewline).last.map(String.init) ?? "no output"
  }
}

/// Runs child processes without blocking a thread (swift-subprocess awaits the child's exit and
/// reads its pipes asynchronously), with a time limit and bounded output: every restore tool,
/// docker, systemctl and hook command goes through here.
public enum ProcessRunner {
  /// Finds `name` on PATH (or returns it when it is already a path).
  public static func which(_ name: String) -> String? {
    if name.contains("/") { return FileManager.default.isExecutableFile(atPath: name) ? name : nil }
    let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/local/bin:/usr/bin:/bin"
    for dir in path.split(separator: ":") {
      let candidate = "\(dir)/\(name)"
      if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
    }
    return nil
  }

  /// Runs `executable` to completion. Output past `outputLimit` bytes per stream keeps only the
  /// tail (the lines that explain a failure). After `timeout` the child gets SIGTERM, then
  /// SIGKILL 5 s later, and the call fails naming the command; cancelling the calling task does
  /// the same.
  public static func run(
    _ executable: String, _ arguments: [String], environment: [String: String] = [:],
    timeout: Duration = .seconds(600), outputLimit: Int = 64 << 10
  ) async throws(LifeboatError) -> ProcessResult {
    let name = (executable as NSString).lastPathComponent
    do {
      return try await withThrowingTaskGroup(of: ProcessResult?.self) { group in
        group.addTask {
          var options = PlatformOptions()
          options.teardownSequence = [.gracefulShutDown(allowedDurationToNextStep: .seconds(5))]
          var updates: [Environment.Key: String?] = [:]
          for (key, value) in environment { updates[Environment.Key(stringLiteral: key)] = value }
          let result = try await Subprocess.run(
            .path(FilePath(executable)), arguments: Arguments(arguments), environment: .inherit.updating(updates),
            platformOptions: options, input: .none, output: .sequence, error: .sequence
          ) { execution in
            async let err = tail(execution.standardError, limit: outputLimit)
            let out = try await tail(execution.standardOutput, limit: outputLimit)
            return (out, try await err)
          }
          let status: Int32
          switch result.terminationStatus {
          case .exited(let code): status = code
          case .signaled(let signal): status = 128 + signal
          }
          return ProcessResult(
            status: status, stdout: String(decoding: result.closureResult.0, as: UTF8.self),
            stderr: String(decoding: result.closureResult.1, as: UTF8.self))
        }
        group.addTask {
          try await Task.sleep(for: timeout)
          return nil
        }
        guard let first = try await group.next(), let result = first else {
          group.cancelAll()
          throw LifeboatError(.failure, "\(name) did not finish within \(timeout) and was stopped", underlying: .process)
        }
        group.cancelAll()
        return result
      }
    } catch let error as LifeboatError {
      throw error
    } catch is CancellationError {
      throw LifeboatError(.failure, "\(name) was stopped: the operation was cancelled", underlying: .cancelled)
    } catch {
      throw LifeboatError(.failure, "cannot run \(executable): \(error)", underlying: .process)
    }
  }

  /// Reads a stream to its end, keeping its last `limit` bytes.
  static func tail(_ sequence: SubprocessOutputSequence, limit: Int) async throws -> [UInt8] {
    var kept: [UInt8] = []
    for try await buffer in sequence {
      buffer.withUnsafeBytes { kept.append(contentsOf: $0) }
      if kept.count > 2 * limit { kept.removeFirst(kept.count - limit) }
    }
    if kept.count > limit { kept.removeFirst(kept.count - limit) }
    return kept
  }
}
