import Foundation
import LifeboatCore
import LifeboatEngine
import Testing

/// Every input of `fuzz/corpus` (the seeds and every crash fuzzing found) through its fuzz
/// target, with the replay build of `lifeboat-fuzz`: none may crash.
@Suite struct FuzzCorpusTests {
  static var corpus: String {
    URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
      .appendingPathComponent("fuzz/corpus").path
  }

  static var binary: String? {
    var directory = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent()
    for _ in 0..<4 {
      let candidate = directory.appendingPathComponent("lifeboat-fuzz").path
      if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
      directory = directory.deletingLastPathComponent()
    }
    return nil
  }

  @Test(arguments: ["zip", "bolt", "manifest", "config", "range", "bodies", "s3xml", "deflate", "age", "agekeys"])
  func theCorpusReplaysWithoutACrash(target: String) async throws {
    let binary = try #require(Self.binary, "lifeboat-fuzz is built beside the tests")
    let dir = Self.corpus + "/" + target
    let inputs = try FileManager.default.contentsOfDirectory(atPath: dir).sorted().map { dir + "/" + $0 }
    #expect(!inputs.isEmpty, "a seed corpus for \(target)")
    let result = try await ProcessRunner.run(binary, [target] + inputs, timeout: .seconds(120))
    #expect(result.status == 0, "\(target): \(result.lastLine)")
    #expect(result.stdout.contains("\(target): \(inputs.count) inputs, no crash"))
  }
}
