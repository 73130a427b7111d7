import Foundation
import ArgumentParser
import LifeboatCore
import Testing

@testable import lifeboat

/// `lifeboat` itself: subcommand routing, --version, --help, unknown commands and flags.
@Suite struct RootCommandTests {
  /// Every documented command line reaches its command type.
  @Test(arguments: [
    (["snapshot", "save", "--endpoints", "http://127.0.0.1:2379"], "SnapshotSave"),
    (["snapshot", "list"], "SnapshotList"),
    (["snapshot", "inspect", "n"], "SnapshotInspect"),
    (["snapshot", "verify", "n"], "SnapshotVerify"),
    (["snapshot", "delete", "n"], "SnapshotDelete"),
    (["snapshot", "restore", "n", "--config", "cluster.yml"], "SnapshotRestore"),
    (["snapshot", "prune", "--config", "cluster.yml"], "SnapshotPrune"),
    (["local", "up"], "LocalUp"),
    (["local", "env"], "LocalEnv"),
    (["local", "down"], "LocalDown"),
    (["agent", "--config", "cluster.yml", "--node", "10.0.0.1"], "AgentCommand"),
    (["status", "--config", "cluster.yml"], "StatusCommand"),
  ])
  func commandLinesReachTheirCommand(arguments: [String], expected: String) throws {
    let command = try Lifeboat.parseAsRoot(arguments)
    #expect(String(describing: type(of: command)) == expected, "\(arguments)")
  }

  @Test func versionPrintsTheVersionAndExitsZero() {
    do {
      _ = try Lifeboat.parseAsRoot(["--version"])
      Issue.record("--version parsed as a command")
    } catch {
      #expect(Lifeboat.exitCode(for: error) == .success)
      #expect(Lifeboat.message(for: error) == LifeboatVersion.current)
      #expect(CommandRunner.report(error) == 0)
    }
  }

  /// `--help` is not an error: exit 0, and the help of the command asked about.
  @Test(arguments: [
    (["--help"], ["snapshot", "local", "agent", "status", "Exit codes"]),
    (["snapshot", "save", "--help"], ["--endpoints", "--compression", "--snapshot-dir", "--s3-endpoint"]),
    (["snapshot", "restore", "--help"], ["--config", "--dry-run", "--yes"]),
    (["local", "up", "-h"], ["--nodes", "--tls", "--dir"]),
  ])
  func helpExitsZero(arguments: [String], mentions: [String]) throws {
    // ArgumentParser answers --help with its own help command, whose run() (what CommandRunner
    // calls next) throws the help text as a clean exit.
    var command = try Lifeboat.parseAsRoot(arguments)
    #expect(String(describing: type(of: command)) == "HelpCommand", "\(arguments) parsed as \(type(of: command))")
    #expect(!(command is any AsyncParsableCommand))
    do {
      try command.run()
      Issue.record("\(arguments): the help command returned normally")
    } catch {
      #expect(Lifeboat.exitCode(for: error) == .success)
      let text = Lifeboat.fullMessage(for: error)
      for flag in mentions { #expect(text.contains(flag), "\(arguments) help lacks \(flag)") }
      #expect(CommandRunner.report(error) == 0)
    }
  }

  @Test(arguments: [
    (["frobnicate"], "frobnicate"), (["snapshot", "frobnicate"], "frobnicate"), (["local", "frobnicate"], "frobnicate"),
    (["snapshot", "backup", "n"], "backup"), (["local", "start"], "start"),
  ])
  func unknownSubcommandsAreUsageErrors(arguments: [String], unknown: String) {
    expectUsageError(arguments, messageContains: [unknown])
  }

  /// Every command refuses a flag it does not know with exit code 2 and names it.
  @Test(arguments: [
    ["snapshot", "save", "--endpoints", "http://127.0.0.1:2379"],
    ["snapshot", "list"],
    ["snapshot", "inspect", "n"],
    ["snapshot", "verify", "n"],
    ["snapshot", "delete", "n"],
    ["snapshot", "restore", "n", "--config", "cluster.yml"],
    ["snapshot", "prune", "--config", "cluster.yml"],
    ["local", "up"],
    ["local", "env"],
    ["local", "down"],
    ["agent", "--config", "cluster.yml", "--node", "10.0.0.1"],
    ["status", "--config", "cluster.yml"],
  ])
  func unknownFlagsAreUsageErrors(arguments: [String]) {
    expectUsageError(arguments + ["--bogus-flag"], messageContains: ["Unknown option", "--bogus-flag"])
    expectUsageError(arguments + ["--bogus-option", "value"], messageContains: ["--bogus-option"])
  }

  /// A usage error is one line: what is wrong and which `--help` to read (ArgumentParser's own
  /// report is three lines).
  @Test(arguments: [
    (["snapshot", "save", "--bogus"], "Unknown option '--bogus'", "lifeboat snapshot save --help"),
    (["snapshot", "sav"], "'sav'", "lifeboat snapshot --help"),
    (["snapshot", "restore", "daily"], "--config", "lifeboat snapshot restore --help"),
    (["snapshot", "save", "--s3-part-size", "1"], "--s3-part-size must be 5 to 512", "lifeboat snapshot save --help"),
    (["frobnicate"], "frobnicate", "lifeboat --help"),
  ])
  func usageErrorsAreOneLine(arguments: [String], names: String, help: String) {
    do {
      _ = try Lifeboat.parseAsRoot(arguments)
      Issue.record("\(arguments) parsed")
    } catch {
      let line = CommandRunner.usageLine(error)
      #expect(!line.contains("\n") && !line.contains("Usage:"), "\(line)")
      #expect(line.contains(names), "\(line)")
      #expect(line.hasSuffix("(see `\(help)`)"), "\(line)")
    }
  }

  /// A flag that exists on another command is still unknown here (no silent acceptance).
  @Test(arguments: [
    (["snapshot", "list"], "--name"),
    (["snapshot", "list"], "--endpoints"),
    (["snapshot", "delete", "n"], "--json"),
    (["snapshot", "restore", "n", "--config", "c.yml"], "--endpoints"),
    (["snapshot", "restore", "n", "--config", "c.yml"], "--snapshot-dir"),
    (["snapshot", "prune", "--config", "c.yml"], "--yes"),
    (["status", "--config", "c.yml"], "--node"),
    (["local", "env"], "--nodes"),
    (["local", "down"], "--tls"),
  ])
  func flagsOfOtherCommandsAreUnknown(arguments: [String], flag: String) {
    expectUsageError(arguments + [flag], messageContains: [flag])
  }
}

/// A second interrupt quits at once, unless it comes right behind the first (`timeout` signals
/// the child and then its process group; found by a review, where that left a `.part`).
@Suite struct InterruptCounterTests {
  @Test func theFirstCancelsARepeatWithinHalfASecondIsTheSameAndALaterOneQuits() {
    var counter = InterruptCounter()
    let start = ContinuousClock.now
    #expect(counter.register(at: start) == .cancel)
    #expect(counter.register(at: start + .milliseconds(5)) == .ignore)
    #expect(counter.register(at: start + .milliseconds(499)) == .ignore)
    #expect(counter.register(at: start + .milliseconds(600)) == .quit)
  }
}

@Suite struct SignalCancellerTests {
  /// A signal at once, before libdispatch has registered anything on its thread, still cancels
  /// the command (with a signal source, such a signal was dropped: an agent told to stop 10-20 ms
  /// after its start kept running).
  @Test func aSignalRightAfterStartCancelsTheCommand() async throws {
    let task = Task<Int32, Never> {
      try? await Task.sleep(for: .seconds(20))
      return Task.isCancelled ? 1 : 0
    }
    let canceller = SignalCanceller(task: task)
    kill(getpid(), SIGINT)
    let cancelled = await task.value
    canceller.stop()
    // The test process gets its signals back (the CLI exits right after `stop()`).
    for signalNumber in [SIGINT, SIGTERM] { signal(signalNumber, SIG_DFL) }
    #expect(cancelled == 1)
  }
}
