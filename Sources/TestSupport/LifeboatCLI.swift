import Foundation
import LifeboatEngine

/// Runs the built `lifeboat` binary (beside the test bundle in the build directory), as a user
/// would, and captures exit code, stdout and stderr.
public enum LifeboatCLI {
  public static var binary: String {
    let executable = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
    var directory = executable.deletingLastPathComponent()
    for _ in 0..<4 {
      let candidate = directory.appendingPathComponent("lifeboat").path
      if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
      directory = directory.deletingLastPathComponent()
    }
    return ProcessRunner.which("lifeboat") ?? "lifeboat"
  }

  public static func run(_ arguments: [String], environment: [String: String] = [:]) async throws -> ProcessResult {
    try await ProcessRunner.run(binary, arguments, environment: environment, timeout: .seconds(1800), outputLimit: 4 << 20)
  }
}
