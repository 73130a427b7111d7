import ArgumentParser
import LifeboatCore
import Testing

@testable import lifeboat

/// `lifeboat snapshot restore NAME --config cluster.yml`.
@Suite struct SnapshotRestoreTests {
  @Test func defaults() throws {
    let restore = try parse(["snapshot", "restore", "daily", "--config", "cluster.yml"], as: SnapshotRestore.self)
    #expect(restore.name == "daily")
    #expect(restore.cluster.config == "cluster.yml")
    #expect(restore.s3 == false)
    #expect(restore.useLocalState == false)
    #expect(restore.dryRun == false)
    #expect(restore.yes == false)
  }

  @Test func everyFlagLandsInItsField() throws {
    let restore = try parse(
      ["snapshot", "restore", "--config", "/etc/rke/cluster.yml", "--s3", "--use-local-state", "--dry-run", "--yes", "daily.zip"],
      as: SnapshotRestore.self)
    #expect(restore.name == "daily.zip")
    #expect(restore.cluster.config == "/etc/rke/cluster.yml")
    #expect(restore.s3 == true)
    #expect(restore.useLocalState == true)
    #expect(restore.dryRun == true)
    #expect(restore.yes == true)
  }

  @Test func eachFlagAlone() throws {
    let base = ["snapshot", "restore", "n", "--config", "c.yml"]
    #expect(try parse(base + ["--s3"], as: SnapshotRestore.self).s3)
    #expect(try parse(base + ["--use-local-state"], as: SnapshotRestore.self).useLocalState)
    #expect(try parse(base + ["--dry-run"], as: SnapshotRestore.self).dryRun)
    let yes = try parse(base + ["--yes"], as: SnapshotRestore.self)
    #expect(yes.yes && !yes.dryRun && !yes.s3 && !yes.useLocalState)
  }

  @Test func configIsRequired() {
    expectUsageError(["snapshot", "restore", "daily"], messageContains: ["Missing expected argument", "--config"])
    expectUsageError(["snapshot", "restore", "daily", "--yes", "--dry-run"], messageContains: ["--config"])
  }

  @Test func theNameIsRequired() {
    expectUsageError(["snapshot", "restore", "--config", "cluster.yml"], messageContains: ["Missing expected argument", "<name>"])
  }

  @Test func oneNameOnly() {
    expectUsageError(["snapshot", "restore", "a", "b", "--config", "c.yml"], messageContains: ["'b'"])
  }

  /// The bucket comes from cluster.yml: restore has --s3 but none of the S3 connection flags.
  @Test(arguments: ["--bucket-name", "--s3-endpoint", "--access-key", "--folder"])
  func s3ConnectionFlagsAreNotRestoreFlags(flag: String) {
    expectUsageError(["snapshot", "restore", "n", "--config", "c.yml", "--s3", flag, "x"], messageContains: [flag])
  }

  /// run() resolves the name with SnapshotName.lookup (a trailing .zip is accepted).
  @Test func theNameIsLookedUpWithoutZip() throws {
    let restore = try parse(["snapshot", "restore", "daily.zip", "--config", "c.yml"], as: SnapshotRestore.self)
    #expect(try SnapshotName.lookup(restore.name ?? "").value == "daily")
  }

  @Test(arguments: ["../x", "a/b", "..", "x.part", "/var/lib/etcd"])
  func badNamesAreUsageErrors(name: String) throws {
    let restore = try parse(["snapshot", "restore", name, "--config", "c.yml"], as: SnapshotRestore.self)
    expectLifeboatUsageError(messageContains: ["invalid snapshot name"]) { try SnapshotName.lookup(restore.name ?? "") }
  }
}

/// `lifeboat snapshot prune --config cluster.yml`.
@Suite struct SnapshotPruneTests {
  @Test func defaults() throws {
    let prune = try parse(["snapshot", "prune", "--config", "cluster.yml"], as: SnapshotPrune.self)
    #expect(prune.cluster.config == "cluster.yml")
    #expect(prune.dryRun == false)
    #expect(prune.includeManual == false)
  }

  @Test func flags() throws {
    let prune = try parse(["snapshot", "prune", "--dry-run", "--include-manual", "--config=/etc/rke/cluster.yml"], as: SnapshotPrune.self)
    #expect(prune.cluster.config == "/etc/rke/cluster.yml")
    #expect(prune.dryRun == true)
    #expect(prune.includeManual == true)
    let dry = try parse(["snapshot", "prune", "--config", "c.yml", "--dry-run"], as: SnapshotPrune.self)
    #expect(dry.dryRun && !dry.includeManual)
  }

  @Test func configIsRequired() {
    expectUsageError(["snapshot", "prune"], messageContains: ["Missing expected argument", "--config"])
    expectUsageError(["snapshot", "prune", "--dry-run"], messageContains: ["--config"])
    expectUsageError(["snapshot", "prune", "--config"], messageContains: ["--config"])
  }

  @Test func takesNoName() {
    expectUsageError(["snapshot", "prune", "--config", "c.yml", "daily"], messageContains: ["daily"])
  }
}

/// `lifeboat agent --config cluster.yml --node ADDRESS`.
@Suite struct AgentCommandTests {
  @Test func configAndNode() throws {
    let agent = try parse(["agent", "--config", "/etc/rke/cluster.yml", "--node", "10.0.0.1"], as: AgentCommand.self)
    #expect(agent.cluster.config == "/etc/rke/cluster.yml")
    #expect(agent.node == "10.0.0.1")
    let reordered = try parse(["agent", "--node=node-2.example", "--config=c.yml"], as: AgentCommand.self)
    #expect(reordered.node == "node-2.example")
    #expect(reordered.cluster.config == "c.yml")
  }

  @Test func configIsRequired() {
    expectUsageError(["agent", "--node", "10.0.0.1"], messageContains: ["Missing expected argument", "--config"])
  }

  @Test func nodeIsRequired() {
    expectUsageError(["agent", "--config", "cluster.yml"], messageContains: ["Missing expected argument", "--node"])
    expectUsageError(["agent", "--config", "cluster.yml", "--node"], messageContains: ["--node"])
  }

  @Test func theNodeIsAFlagNotAnArgument() {
    expectUsageError(["agent", "--config", "cluster.yml", "10.0.0.1"], messageContains: ["--node"])
    expectUsageError(["agent", "--config", "cluster.yml", "--node", "10.0.0.1", "10.0.0.2"], messageContains: ["'10.0.0.2'"])
  }
}

/// `lifeboat status --config cluster.yml [--run-now]`.
@Suite struct StatusCommandTests {
  @Test func defaults() throws {
    let status = try parse(["status", "--config", "cluster.yml"], as: StatusCommand.self)
    #expect(status.cluster.config == "cluster.yml")
    #expect(status.runNow == false)
  }

  @Test func runNow() throws {
    let status = try parse(["status", "--run-now", "--config", "/etc/rke/cluster.yml"], as: StatusCommand.self)
    #expect(status.runNow == true)
    #expect(status.cluster.config == "/etc/rke/cluster.yml")
  }

  @Test func configIsRequired() {
    expectUsageError(["status"], messageContains: ["Missing expected argument", "--config"])
    expectUsageError(["status", "--run-now"], messageContains: ["--config"])
  }

  @Test func runNowTakesNoValue() {
    expectUsageError(["status", "--config", "c.yml", "--run-now=true"], messageContains: ["--run-now"])
  }
}
