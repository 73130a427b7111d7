import Foundation
import TestSupport
import Testing

extension Integration {
  /// Every command validates first: bad input is one line on stderr, the documented exit code,
  /// and nothing written. No etcd is needed: validation happens before any connection.
  @Suite struct BadInputTests {
    static let endpoint = ["--endpoints", "http://127.0.0.1:9"]

    func run(_ arguments: [String], in dir: TemporaryDirectory) async throws -> (status: Int32, stderr: String) {
      let result = try await LifeboatCLI.run(["snapshot", "save", "--snapshot-dir", dir.file("snapshots")] + arguments)
      return (result.status, result.stderr)
    }

    @Test(arguments: [["--name", "../x"], ["--name", "a/b"], ["--name", ""], ["--endpoints", "ftp://127.0.0.1:2379"],
                      ["--endpoints", "127.0.0.1:2379"], ["--cacert", "/nonexistent/ca.pem"]])
    func badArgumentsAreUsageErrors(_ arguments: [String]) async throws {
      try await withTemporaryDirectory { dir in
        let base = arguments.contains("--endpoints") ? [] : Self.endpoint
        let result = try await run(base + arguments, in: dir)
        #expect(result.status == 2, "\(arguments): \(result.stderr)")
        #expect(result.stderr.split(separator: "\n").count == 1, "one line: \(result.stderr)")
        #expect(result.stderr.hasPrefix("lifeboat: error:"))
        #expect(dir.contents().isEmpty, "nothing written for \(arguments)")
      }
    }

    @Test func aMissingCertificateFileIsNamed() async throws {
      try await withTemporaryDirectory { dir in
        try Data("-----BEGIN CERTIFICATE-----\n".utf8).write(to: URL(fileURLWithPath: dir.file("ca.pem")))
        let result = try await run(
          ["--endpoints", "https://127.0.0.1:9", "--cacert", dir.file("ca.pem"), "--cert", dir.file("missing.pem"), "--key", dir.file("k.pem")],
          in: dir)
        #expect(result.status == 2)
        #expect(result.stderr.contains(dir.file("missing.pem")))
        #expect(dir.contents() == ["ca.pem"])
      }
    }

    @Test func aSnapshotDirUnderARegularFileIsAStorageError() async throws {
      try await withTemporaryDirectory { dir in
        try Data("x".utf8).write(to: URL(fileURLWithPath: dir.file("file")))
        let result = try await LifeboatCLI.run(["snapshot", "save", "--snapshot-dir", dir.file("file/snapshots")] + Self.endpoint)
        #expect(result.status == 6, "\(result.stderr)")
        #expect(result.stderr.contains(dir.file("file")))
        #expect(result.stderr.split(separator: "\n").count == 1)
        #expect(dir.contents() == ["file"])
      }
    }

    @Test func anExistingSnapshotIsNeverOverwritten() async throws {
      try await withTemporaryDirectory { dir in
        try FileManager.default.createDirectory(atPath: dir.file("snapshots"), withIntermediateDirectories: true)
        try Data("precious".utf8).write(to: URL(fileURLWithPath: dir.file("snapshots/keep.zip")))
        let result = try await run(Self.endpoint + ["--name", "keep"], in: dir)
        #expect(result.status == 2)
        #expect(result.stderr.contains("already exists"))
        #expect(try String(contentsOfFile: dir.file("snapshots/keep.zip"), encoding: .utf8) == "precious")
        #expect(dir.contents(of: "snapshots") == ["keep.zip"])
      }
    }

    @Test func unknownSnapshotsAreNotFound() async throws {
      try await withTemporaryDirectory { dir in
        for command in ["inspect", "verify"] {
          let result = try await LifeboatCLI.run(["snapshot", command, "nothing-here", "--snapshot-dir", dir.path])
          #expect(result.status == 3, "\(command): \(result.stderr)")
        }
      }
    }
  }
}

func withTemporaryDirectorySync<R>(_ body: (TemporaryDirectory) throws -> R) throws -> R {
  let directory = try TemporaryDirectory()
  defer { directory.remove() }
  return try body(directory)
}
