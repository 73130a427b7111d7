import Foundation
import LifeboatCore
import LifeboatEngine
import TestSupport
import Testing

extension Integration {
  /// The smaller findings of the crash-safety work, each as a user meets it.
  @Suite struct RestoreFindingsTests {
    /// Two nodes whose snapshot directory is one shared mount (RKE's docs warn of it): a save
    /// counts the copy as present, prune deletes once, save and status say so.
    @Test func nodesSharingASnapshotDirectory() async throws {
      try await withAgentCluster(nodes: 2) { cluster in
        let shared = cluster.members[0].snapshotDir!
        let text = try String(contentsOfFile: cluster.configFile, encoding: .utf8)
        let moved = text.replacingOccurrences(of: cluster.members[1].snapshotDir!, with: shared)
        #expect(moved != text)
        try moved.write(toFile: cluster.configFile, atomically: true, encoding: .utf8)
        try await cluster.restartAgent(0)
        try await cluster.restartAgent(1)
        _ = try await writeKeys(cluster, count: 50)
        let save = try await LifeboatCLI.run(["snapshot", "save", "--config", cluster.configFile, "--name", "one"])
        #expect(save.status == 0, "\(save.stderr)")
        #expect(save.stdout.contains("shares its snapshot directory with 127.0.0.11"), "\(save.stdout)")
        #expect(save.stdout.contains("copies    127.0.0.11, 127.0.0.12"), "\(save.stdout)")
        let files = try FileManager.default.contentsOfDirectory(atPath: shared).filter { $0.hasPrefix("one.") }.sorted()
        #expect(files == ["one.manifest.json", "one.zip"])
        let status = try await LifeboatCLI.run(["status", "--config", cluster.configFile])
        #expect(status.stdout.contains("shared"), "\(status.stdout)")
        let prune = try await LifeboatCLI.run(["snapshot", "prune", "--config", cluster.configFile, "--include-manual"])
        #expect(prune.status == 0, "prune deletes once, never fails on the second node: \(prune.stdout)\(prune.stderr)")
      }
    }

    /// A killed save's `.part`, plain or encrypted (found by a review: `x.zip.age.part` was listed
    /// as `x.age` and could not be deleted), is listed under the snapshot's name and deleted by it.
    @Test(arguments: ["zip", "zip.age"])
    func aStrayPartFileIsListedAndDeleted(suffix: String) async throws {
      try await withTemporaryDirectory { dir in
        let part = dir.file("killed.\(suffix).part")
        try Data(repeating: 7, count: 5000).write(to: URL(fileURLWithPath: part))
        let list = try await LifeboatCLI.run(["snapshot", "list", "--snapshot-dir", dir.path])
        #expect(list.status == 0, "\(list.stderr)")
        #expect(list.stdout.contains("killed ") && list.stdout.contains("INCOMPLETE"), "\(list.stdout)")
        #expect(!list.stdout.contains("killed.age"), "\(list.stdout)")
        #expect(list.stderr.contains("`lifeboat snapshot delete killed` removes it"), "\(list.stderr)")
        let delete = try await LifeboatCLI.run(["snapshot", "delete", "killed", "--snapshot-dir", dir.path])
        #expect(delete.status == 0, "\(delete.stderr)")
        #expect(!FileManager.default.fileExists(atPath: part))
        let again = try await LifeboatCLI.run(["snapshot", "delete", "killed", "--snapshot-dir", dir.path])
        #expect(again.status == 3, "nothing left to delete: \(again.stderr)")
      }
    }

    @Test func listingADirectoryThatDoesNotExistIsAnError() async throws {
      let list = try await LifeboatCLI.run(["snapshot", "list", "--snapshot-dir", "/nonexistent/snapshots"])
      #expect(list.status == 2, "\(list.stdout)\(list.stderr)")
      #expect(list.stderr.contains("/nonexistent/snapshots"))
    }

    @Test func aCertificateAndAKeyThatDoNotMatchAreAUsageErrorNamingBoth() async throws {
      try await withTemporaryDirectory { dir in
        let ca = try CertificateAuthority(commonName: "kube-ca")
        let a = try ca.issue(commonName: "kube-admin")
        let b = try ca.issue(commonName: "kube-admin")
        try ca.certificatePEM.write(toFile: dir.file("ca.pem"), atomically: true, encoding: .utf8)
        try a.certificatePEM.write(toFile: dir.file("a.pem"), atomically: true, encoding: .utf8)
        try b.keyPEM.write(toFile: dir.file("b-key.pem"), atomically: true, encoding: .utf8)
        let save = try await LifeboatCLI.run([
          "snapshot", "save", "--snapshot-dir", dir.file("snaps"), "--endpoints", "https://127.0.0.1:9",
          "--cacert", dir.file("ca.pem"), "--cert", dir.file("a.pem"), "--key", dir.file("b-key.pem"),
        ])
        #expect(save.status == 2, "\(save.stderr)")
        #expect(save.stderr.contains(dir.file("a.pem")) && save.stderr.contains(dir.file("b-key.pem")), "\(save.stderr)")
        #expect(!FileManager.default.fileExists(atPath: dir.file("snaps")), "nothing written")
      }
    }

    /// A manifest in S3 whose size overflows: a verification error (exit 4) naming the object,
    /// and every agent still runs.
    @Test func anOverflowingManifestFromS3IsRefused() async throws {
      try await withMotoServer { moto in
        try await moto.createBucket("snaps")
        try await withAgentCluster(configure: { spec in
          spec.s3 = moto.backupConfig(bucket: "snaps", folder: "prod")
          spec.s3InsecureHTTP = true
        }) { cluster in
          _ = try await writeKeys(cluster, count: 50)
          let save = try await LifeboatCLI.run(["snapshot", "save", "--config", cluster.configFile, "--name", "remote"])
          try #require(save.status == 0, "\(save.stderr)")
          let local = cluster.members[0].snapshotDir! + "/remote.manifest.json"
          let bad = try String(contentsOfFile: local, encoding: .utf8)
            .replacingOccurrences(of: #""dbSize" : \d+"#, with: #""dbSize" : 18446744073709551615"#, options: .regularExpression)
          let upload = cluster.directory.file("bad.manifest.json")
          try bad.write(toFile: upload, atomically: true, encoding: .utf8)
          #expect(try await moto.aws(["s3", "cp", upload, "s3://snaps/prod/remote.manifest.json"]).status == 0)
          let restore = try await LifeboatCLI.run(["snapshot", "restore", "remote", "--config", cluster.configFile, "--s3", "--yes"])
          #expect(restore.status == 4, "\(restore.stderr)")
          #expect(restore.stderr.contains("dbSize") && restore.stderr.contains("remote.manifest.json"), "\(restore.stderr)")
          for i in 0..<3 { #expect(cluster.agentRunning(i)) }
        }
      }
    }
  }
}

extension Integration.RestoreFindingsTests {
  /// etcd 3.4 that has not joined its cluster (here: one member of three, the others never
  /// started, as a lone restored member waits for quorum) accepts connections and never
  /// answers. Every command gives up in bounded time with a clear error; the client never
  /// hangs on closing its connection (it did: `withGRPCClient` waited for the server forever).
  @Test func aMemberThatNeverAnswersDoesNotHangTheCommand() async throws {
    try await withTemporaryDirectory { dir in
      let client = try freeTCPPort(on: "127.0.0.1")
      let peers = try (0..<3).map { _ in try freeTCPPort(on: "127.0.0.1") }
      let cluster = peers.enumerated().map { "m\($0.offset)=http://127.0.0.1:\($0.element)" }.joined(separator: ",")
      let pid = try DetachedProcess.spawn(
        executable: ProcessRunner.which("etcd") ?? "/usr/bin/etcd",
        arguments: [
          "--name=m0", "--data-dir=\(dir.file("data"))", "--listen-client-urls=http://127.0.0.1:\(client)",
          "--advertise-client-urls=http://127.0.0.1:\(client)", "--listen-peer-urls=http://127.0.0.1:\(peers[0])",
          "--initial-advertise-peer-urls=http://127.0.0.1:\(peers[0])", "--initial-cluster=\(cluster)",
          "--initial-cluster-state=new",
        ],
        logFile: dir.file("etcd.log"))
      try await withCleanup({
        try await Task.sleep(for: .seconds(1))
        let started = ContinuousClock.now
        let save = try await LifeboatCLI.run([
          "snapshot", "save", "--endpoints", "http://127.0.0.1:\(client)", "--snapshot-dir", dir.file("snaps"), "--name", "x",
        ])
        #expect(save.status == 5, "\(save.stderr)")
        #expect(save.stderr.contains("127.0.0.1:\(client)"), "names the member: \(save.stderr)")
        #expect(ContinuousClock.now - started < .seconds(60), "gives up within the request timeout and the shutdown grace")
      }, cleanup: { DetachedProcess.kill9(pid) })
    }
  }
}

extension Integration.RestoreFindingsTests {
  /// Schedules pause for a restore's lease or journal only: a leftover `restore-<id>` directory
  /// (a dead agent's download) never stops them again.
  @Test func strayRestoreFilesDoNotPauseSchedules() async throws {
    try await withAgentCluster(nodes: 1, configure: { spec in spec.lifeboatSettings = ["interval_seconds: 3600"] }) { cluster in
      let stray = cluster.members[0].runDir + "/restore-20260101T000000Z-deadbeef"
      try FileManager.default.createDirectory(atPath: stray, withIntermediateDirectories: true)
      try Data("partial".utf8).write(to: URL(fileURLWithPath: stray + "/db"))
      let run = try await LifeboatCLI.run(["status", "--config", cluster.configFile, "--run-now"])
      #expect(run.status == 0, "\(run.stdout)\(run.stderr)")
      #expect(run.stdout.contains("run on 127.0.0.11: ok"), "\(run.stdout)")
    }
  }
}
