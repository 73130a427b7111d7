import EtcdClient
import Foundation
import LifeboatCore
import LifeboatEngine
import TestSupport
import Testing

extension Integration {
  /// list, inspect and verify against snapshots made by Lifeboat, by RKE's tools and legacy files.
  @Suite struct ReadTests {
    @Test func verifyNamesTheCheckThatFails() async throws {
      try await withEtcdCluster(nodes: 1) { cluster in
        _ = try await writeKeys(cluster, count: 300, size: 512)
        let dir = cluster.directory.file("snapshots")
        let save = try await LifeboatCLI.run(["snapshot", "save", "--name", "s1", "--snapshot-dir", dir] + cluster.connectionFlags)
        #expect(save.status == 0, "\(save.stderr)")
        let good = try await LifeboatCLI.run(["snapshot", "verify", "s1", "--snapshot-dir", dir])
        #expect(good.status == 0)
        #expect(good.stdout.contains("etcd's SHA-256 trailer"))
        #expect(good.stdout.contains("archive SHA-256 matches the manifest"))

        // A flipped byte inside the compressed snapshot: the CRC-32 check fails.
        let archive = dir + "/s1.zip"
        let original = try Data(contentsOf: URL(fileURLWithPath: archive))
        var bytes = [UInt8](original)
        // (64 bytes: one flipped bit can land where Deflate does not look, e.g. the code length
        // of a symbol no block uses, and then the data is still intact.)
        for i in 0..<64 { bytes[bytes.count / 3 + i] ^= 0x5A }
        try Data(bytes).write(to: URL(fileURLWithPath: archive))
        let bad = try await LifeboatCLI.run(["snapshot", "verify", "s1", "--snapshot-dir", dir])
        #expect(bad.status == 4)
        #expect(bad.stderr.split(separator: "\n").count == 1, "one line: \(bad.stderr)")
        #expect(bad.stderr.contains("CRC-32") || bad.stderr.contains("corrupt"), "\(bad.stderr)")

        // An intact archive whose manifest disagrees: the manifest check fails.
        try original.write(to: URL(fileURLWithPath: archive))
        let manifestPath = dir + "/s1.manifest.json"
        let manifestText = try String(contentsOfFile: manifestPath, encoding: .utf8)
        let manifest = try Manifest.decode(Array(manifestText.utf8), path: manifestPath)
        try manifestText.replacingOccurrences(of: manifest.archiveSHA256, with: String(repeating: "0", count: 64))
          .write(toFile: manifestPath, atomically: true, encoding: .utf8)
        let mismatch = try await LifeboatCLI.run(["snapshot", "verify", "s1", "--snapshot-dir", dir])
        #expect(mismatch.status == 4)
        #expect(mismatch.stderr.contains("archive SHA-256"))

        let missing = try await LifeboatCLI.run(["snapshot", "verify", "s", "--snapshot-dir", dir])
        #expect(missing.status == 3, "s must not match s1")
      }
    }

    @Test func listAndInspectShowLifeboatRKEAndLegacySnapshots() async throws {
      try await withEtcdCluster(nodes: 1) { cluster in
        _ = try await writeKeys(cluster, count: 50)
        let revision = try await cluster.withClient { try await $0.status().revision }
        let dir = cluster.directory.file("snapshots")
        let stateFile = cluster.directory.file("cluster.rkestate")
        try Data("{\"currentState\":{}}".utf8).write(to: URL(fileURLWithPath: stateFile))
        let save = try await LifeboatCLI.run(
          ["snapshot", "save", "--name", "lifeboat-made", "--state-file", stateFile, "--snapshot-dir", dir]
            + cluster.connectionFlags)
        #expect(save.status == 0, "\(save.stderr)")

        // What RKE leaves: `etcdctl snapshot save`, zipped with Go's archive/zip (here Python's
        // zipfile with the same absolute entry path), and an old bare snapshot file.
        let raw = cluster.directory.file("raw.db")
        let etcdSave = try await etcdctl(["--endpoints", cluster.endpoints[0], "snapshot", "save", raw])
        #expect(etcdSave.status == 0, "\(etcdSave.stderr)")
        let zip = try await ProcessRunner.run(
          "/usr/bin/env",
          [
            "python3", "-c",
            "import zipfile,sys; z=zipfile.ZipFile(sys.argv[1],'w',zipfile.ZIP_DEFLATED); z.write(sys.argv[2], '/backup/rke-made'); z.close()",
            dir + "/rke-made.zip", raw,
          ])
        #expect(zip.status == 0, "\(zip.stderr)")
        try FileManager.default.copyItem(atPath: raw, toPath: dir + "/legacy-snapshot")

        let list = try await LifeboatCLI.run(["snapshot", "list", "--snapshot-dir", dir, "--json"])
        #expect(list.status == 0, "\(list.stderr)")
        struct Row: Decodable { var name: String; var kind: String; var manifest: Bool; var stateFile: Bool?; var revision: Int64? }
        let rows = try JSONDecoder().decode([Row].self, from: Data(list.stdout.utf8))
        #expect(rows.map(\.name) == ["legacy-snapshot", "lifeboat-made", "rke-made"])
        #expect(rows.map(\.kind) == ["legacy", "archive", "archive"])
        #expect(rows.map(\.manifest) == [false, true, false])
        #expect(rows[1].stateFile == true)
        #expect(rows[2].stateFile == false)
        #expect(rows[1].revision == revision)

        for name in ["legacy-snapshot", "rke-made", "lifeboat-made"] {
          let verify = try await LifeboatCLI.run(["snapshot", "verify", name, "--snapshot-dir", dir])
          #expect(verify.status == 0, "\(name): \(verify.stderr)")
        }

        let inspect = try await LifeboatCLI.run(["snapshot", "inspect", "lifeboat-made", "--snapshot-dir", dir, "--json"])
        #expect(inspect.status == 0, "\(inspect.stderr)")
        let report = try JSONDecoder().decode(InspectReportShape.self, from: Data(inspect.stdout.utf8))
        let status = try await etcdctl(["snapshot", "status", raw, "--write-out=json"])
        let direct = try JSONDecoder().decode(EtcdctlStatus.self, from: Data(status.stdout.utf8))
        #expect(report.status.revision == direct.revision)
        #expect(report.status.totalKeys == direct.totalKey)
        #expect(report.status.hash == direct.hash)
        #expect(report.stateFile)
        #expect(report.trailer == "valid")
        let text = try await LifeboatCLI.run(["snapshot", "inspect", "lifeboat-made", "--snapshot-dir", dir])
        #expect(text.stdout.contains("total keys:"))
        #expect(text.stdout.contains("every stored revision"))
        #expect(text.stdout.contains("state file:      yes"))
      }
    }

    /// The native bbolt reader reports exactly what `etcdctl snapshot status` reports, on a
    /// database with branch pages, overflow pages, deleted keys and many revisions.
    /// `inspect --objects` counts what the live member serves: the same keys as `etcdctl get
    /// --prefix --keys-only`, grouped by resource and namespace, with history, deletions, a
    /// re-created key, cluster-scoped objects, a CRD, a custom resource and a non-Kubernetes key.
    /// `snapshot save --name NAME` of the member, then `inspect NAME --objects --json`; and the directory.
    static func savedObjects(_ cluster: EtcdClusterFixture, _ name: String) async throws -> (ObjectsShape, String) {
      let dir = cluster.directory.file("snapshots")
      let save = try await LifeboatCLI.run(["snapshot", "save", "--name", name, "--snapshot-dir", dir] + cluster.connectionFlags)
      #expect(save.status == 0, "\(save.stderr)")
      let inspect = try await LifeboatCLI.run(["snapshot", "inspect", name, "--snapshot-dir", dir, "--objects", "--json"])
      #expect(inspect.status == 0, "\(inspect.stderr)")
      return (try JSONDecoder().decode(ObjectsShape.self, from: Data(inspect.stdout.utf8)), dir)
    }

    /// Every key the live member lists (`etcdctl get "" --prefix --keys-only`).
    static func liveKeys(_ cluster: EtcdClusterFixture) async throws -> [String] {
      let listing = try await etcdctl(["--endpoints", cluster.endpoints[0], "get", "", "--prefix", "--keys-only"])
      #expect(listing.status == 0, "\(listing.stderr)")
      return listing.stdout.split(separator: "\n").map(String.init).filter { !$0.isEmpty }
    }

    @Test func inspectObjectsCountsWhatTheMemberServes() async throws {
      try await withEtcdCluster(nodes: 1) { cluster in
        try await cluster.withClient { client in
          var pairs: [(key: String, value: [UInt8])] = []
          for (namespace, count) in [("default", 40), ("kube-system", 25), ("bench", 300)] {
            pairs += (0..<count).map { (key: "/registry/configmaps/\(namespace)/cm-\($0)", value: Array("{\"n\":\($0)}".utf8)) }
          }
          pairs += (0..<30).map { (key: "/registry/pods/default/pod-\($0)", value: [UInt8](repeating: 7, count: 500)) }
          pairs += (0..<3).map { (key: "/registry/namespaces/ns-\($0)", value: [1]) }
          pairs += [
            (key: "/registry/apiextensions.k8s.io/customresourcedefinitions/foos.example.com", value: [1]),
            (key: "/registry/example.com/foos/default/foo-1", value: [1]),
            (key: "/lifeboat/lock/local", value: [1]),
            (key: "/registry/services/specs/default/kubernetes", value: [1]),
            (key: "/registry/services/endpoints/default/kubernetes", value: [1]),
          ]
          try await client.putAll(pairs)
          _ = try await client.deletePrefix("/registry/configmaps/bench/cm-1")  // cm-1, cm-10..19, cm-100..199
          for i in 0..<5 { try await client.put("/registry/pods/default/pod-0", Array("rev-\(i)".utf8)) }
          _ = try await client.deletePrefix("/registry/pods/default/pod-29")
          try await client.put("/registry/pods/default/pod-29", Array("again".utf8))
        }
        let (report, dir) = try await Self.savedObjects(cluster, "objects")

        // What the live member serves, counted independently of Lifeboat's code.
        let keys = try await Self.liveKeys(cluster)
        #expect(report.objects.total == keys.count)
        func served(_ prefix: String) -> Int { keys.filter { $0.hasPrefix(prefix) }.count }
        func counted(_ resource: String, _ namespace: String?) -> Int {
          report.objects.kubernetes.first { $0.resource == resource && $0.namespace == namespace }?.count ?? 0
        }
        #expect(counted("configmaps", "bench") == served("/registry/configmaps/bench/"))
        #expect(counted("configmaps", "bench") == 300 - 111)
        #expect(counted("configmaps", "default") == 40 && counted("configmaps", "kube-system") == 25)
        #expect(counted("pods", "default") == served("/registry/pods/default/") && counted("pods", "default") == 30)
        #expect(counted("namespaces", nil) == 3)
        #expect(counted("apiextensions.k8s.io/customresourcedefinitions", nil) == 1)
        #expect(counted("example.com/foos", "default") == 1)
        #expect(counted("services", "default") == 1 && counted("endpoints", "default") == 1, "Kubernetes' services/specs and services/endpoints")
        #expect(report.objects.other == ["/lifeboat/": 1])
        let text = try await LifeboatCLI.run(["snapshot", "inspect", "objects", "--snapshot-dir", dir, "--objects"])
        #expect(text.stdout.contains("configmaps") && text.stdout.contains("\(keys.count) live keys"), "\(text.stdout)")
      }
    }

    /// The team's seeded filler (`benchmarks/fill-etcd`, a copy of ../shared/bench/fill-etcd) writes
    /// Kubernetes-like configmaps; `inspect --objects` counts what it wrote, and what the live
    /// member lists.
    @Test func inspectObjectsCountsWhatFillEtcdWrote() async throws {
      try await withEtcdCluster(nodes: 1) { cluster in
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let fill = ProcessInfo.processInfo.environment["FILL_ETCD"] ?? root.appendingPathComponent("benchmarks/fill-etcd").path
        let filled = try await ProcessRunner.run(
          ProcessRunner.which("python3") ?? "/usr/bin/python3", [fill, cluster.endpoints[0], "--mib", "6", "--value-kib", "4"])
        #expect(filled.status == 0, "\(filled.stderr)")
        let written = Int(filled.stdout.split(separator: " ").dropFirst().first ?? "")  // "wrote N keys of ... bytes"
        #expect(written == 6 * 1024 / 4, "\(filled.stdout)")
        let (report, _) = try await Self.savedObjects(cluster, "filled")
        let keys = try await Self.liveKeys(cluster)
        let served = keys.filter { $0.hasPrefix("/registry/configmaps/bench/") }.count
        let bench = report.objects.kubernetes.first { $0.resource == "configmaps" && $0.namespace == "bench" }?.count
        #expect(bench == written && bench == served, "inspect \(bench ?? -1), fill-etcd \(written ?? -1), etcdctl \(served)")
        #expect(report.objects.total == keys.count)
      }
    }

    @Test func nativeStatusMatchesEtcdctl() async throws {
      try await withEtcdCluster(nodes: 1) { cluster in
        _ = try await writeKeys(cluster, count: 3000, size: 300)
        try await cluster.withClient { client in
          try await client.putAll((0..<20).map { (key: "/big/\($0)", value: [UInt8](repeating: UInt8($0), count: 20_000)) })
          try await client.deletePrefix("/registry/test/01")
          for i in 0..<50 { try await client.put("/registry/test/00001", Array("rev-\(i)".utf8)) }
        }
        let raw = cluster.directory.file("raw.db")
        let save = try await etcdctl(["--endpoints", cluster.endpoints[0], "snapshot", "save", raw])
        #expect(save.status == 0, "\(save.stderr)")
        let status = try await etcdctl(["snapshot", "status", raw, "--write-out=json"])
        let expected = try JSONDecoder().decode(EtcdctlStatus.self, from: Data(status.stdout.utf8))
        let native = try SnapshotStatus.read(path: raw)
        #expect(
          EtcdctlStatus(hash: native.hash, revision: native.revision, totalKey: native.totalKeys, totalSize: native.totalSize)
            == expected)
        #expect(expected.totalKey > 3000)
      }
    }
  }
}

struct EtcdctlStatus: Decodable, Equatable {
  var hash: UInt32
  var revision: Int64
  var totalKey: Int64
  var totalSize: Int64
}

struct ObjectsShape: Decodable {
  struct Objects: Decodable {
    struct Count: Decodable { var resource: String; var namespace: String?; var count: Int }
    var kubernetes: [Count]
    var other: [String: Int]
    var total: Int
  }
  var objects: Objects
}

struct InspectReportShape: Decodable {
  struct Status: Decodable { var revision: Int64; var totalKeys: Int64; var hash: UInt32 }
  var status: Status
  var stateFile: Bool
  var trailer: String
  var dbSHA256: String
}
