import ArgumentParser
import LifeboatCore
import Testing

@testable import lifeboat

/// `lifeboat snapshot list`.
@Suite struct SnapshotListTests {
  @Test func defaults() throws {
    let list = try parse(["snapshot", "list"], as: SnapshotList.self)
    #expect(list.storage.snapshotDir == "/opt/rke/etcd-snapshots")
    #expect(list.output.json == false)
    #expect(list.remote.s3 == false)
    #expect(try list.remote.configuration() == nil, "no S3 store without --s3")
  }

  @Test func flags() throws {
    let list = try parse(["snapshot", "list", "--json", "--snapshot-dir", "/srv/snapshots"], as: SnapshotList.self)
    #expect(list.storage.snapshotDir == "/srv/snapshots")
    #expect(list.storage.store.directory == "/srv/snapshots")
    #expect(list.output.json == true)
  }

  @Test func takesNoName() {
    expectUsageError(["snapshot", "list", "some-snapshot"], messageContains: ["some-snapshot"])
  }

  @Test func snapshotDirNeedsAValue() {
    expectUsageError(["snapshot", "list", "--snapshot-dir"], messageContains: ["--snapshot-dir"])
  }
}

/// `inspect`, `verify` and `delete` take one snapshot by name (NamedSnapshotOptions).
@Suite struct NamedSnapshotCommandTests {
  /// The command name and a way to get at its NamedSnapshotOptions, S3Options and --json.
  struct Named: Sendable, CustomTestStringConvertible {
    var command: String
    var hasJSON: Bool
    var testDescription: String { command }

    func parsed(_ arguments: [String]) throws -> (snapshot: NamedSnapshotOptions, remote: S3Options, json: Bool?) {
      let command = try Lifeboat.parseAsRoot(["snapshot", self.command] + arguments)
      switch command {
      case let c as SnapshotInspect: return (c.snapshot, c.remote, c.output.json)
      case let c as SnapshotVerify: return (c.snapshot, c.remote, c.output.json)
      case let c as SnapshotDelete: return (c.snapshot, c.remote, nil)
      default:
        Issue.record("snapshot \(self.command) parsed as \(type(of: command))")
        throw ValidationError("wrong command")
      }
    }
  }

  static let commands = [Named(command: "inspect", hasJSON: true), Named(command: "verify", hasJSON: true), Named(command: "delete", hasJSON: false)]

  @Test(arguments: commands)
  func nameAndDefaults(command: Named) throws {
    let parsed = try command.parsed(["rke_etcd_snapshot_2024-01-02T03:04:05Z"])
    #expect(parsed.snapshot.name == "rke_etcd_snapshot_2024-01-02T03:04:05Z")
    #expect(try parsed.snapshot.snapshotName.value == "rke_etcd_snapshot_2024-01-02T03:04:05Z")
    #expect(parsed.snapshot.storage.snapshotDir == "/opt/rke/etcd-snapshots")
    #expect(parsed.remote.s3 == false)
    if command.hasJSON { #expect(parsed.json == false) }
  }

  @Test(arguments: commands)
  func snapshotDirAndNameInAnyOrder(command: Named) throws {
    let parsed = try command.parsed(["--snapshot-dir", "/srv/snapshots", "daily"])
    #expect(parsed.snapshot.name == "daily")
    #expect(parsed.snapshot.storage.snapshotDir == "/srv/snapshots")
  }

  @Test(arguments: commands)
  func aTrailingZipIsDropped(command: Named) throws {
    let parsed = try command.parsed(["daily.zip"])
    #expect(try parsed.snapshot.snapshotName.value == "daily")
    #expect(try parsed.snapshot.snapshotName.archiveFileName == "daily.zip")
  }

  @Test(arguments: commands)
  func jsonOnlyWhereItExists(command: Named) throws {
    if command.hasJSON {
      #expect(try command.parsed(["n", "--json"]).json == true)
    } else {
      expectUsageError(["snapshot", command.command, "n", "--json"], messageContains: ["--json"])
    }
  }

  @Test(arguments: commands)
  func theNameIsRequired(command: Named) {
    expectUsageError(["snapshot", command.command], messageContains: ["Missing expected argument", "<name>"])
    expectUsageError(["snapshot", command.command, "--snapshot-dir", "/srv"], messageContains: ["<name>"])
  }

  @Test(arguments: commands)
  func oneNameOnly(command: Named) {
    expectUsageError(["snapshot", command.command, "a", "b"], messageContains: ["'b'"])
  }

  @Test(arguments: commands, ["../x", "a/b", "..", ".", ".zip.zip", "x.part", "x.manifest.json", "/etc/passwd", "bad\u{1}name"])
  func badNamesAreUsageErrors(command: Named, name: String) throws {
    let parsed = try command.parsed([name])
    expectLifeboatUsageError(messageContains: ["invalid snapshot name"]) { try parsed.snapshot.snapshotName }
  }

  /// A bare `.zip` is not emptied to "" by dropping the extension: it is refused as a name with
  /// an extension.
  @Test(arguments: commands)
  func aBareZipIsRefused(command: Named) throws {
    let parsed = try command.parsed([".zip"])
    expectLifeboatUsageError(messageContains: ["invalid snapshot name \".zip\""]) { try parsed.snapshot.snapshotName }
  }

  @Test(arguments: commands)
  func s3FlagsReachTheirCommand(command: Named) async throws {
    let parsed = try command.parsed(["n", "--s3", "--bucket-name", "backups", "--access-key", "AK", "--secret-key", "SK", "--folder", "prod"])
    let s3 = try #require(try parsed.remote.configuration())
    #expect(s3.bucket == "backups")
    #expect(s3.folder == "prod")
    #expect(try await s3.credentials.credentials().accessKey == "AK")
  }
}
