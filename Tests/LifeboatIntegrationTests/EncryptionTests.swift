import Crypto
import EtcdClient
import Foundation
import LifeboatCore
import LifeboatEngine
import SnapshotStores
import TestSupport
import Testing

extension Integration {
  /// Snapshots encrypted with age on their way to S3 (real moto, real agents, Debian's `age`):
  /// the identity is given to the operator's command only.
  @Suite struct EncryptionTests {
    static func keygen(_ dir: String, name: String = "ops.key") async throws -> (file: String, recipient: String) {
      let file = dir + "/" + name
      let result = try await ProcessRunner.run(ProcessRunner.which("age-keygen") ?? "/usr/bin/age-keygen", ["-o", file])
      #expect(result.status == 0, "\(result.stderr)")
      let text = result.stdout + result.stderr
      let recipient = try #require(text.split(whereSeparator: { $0 == " " || $0 == "\n" }).first { $0.hasPrefix("age1") })
      return (file, String(recipient))
    }

    static func sha256(_ path: String) throws -> String {
      SHA256.hash(data: try Data(contentsOf: URL(fileURLWithPath: path))).map { String(format: "%02x", $0) }.joined()
    }

    @Test func encryptedSaveVerifyAndRestoreOnThreeNodesFromS3() async throws {
      try await withMotoServer { moto in
        try await moto.createBucket("snaps")
        try await withTemporaryDirectory { keys in
          let (identity, recipient) = try await Self.keygen(keys.path)
          let (other, _) = try await Self.keygen(keys.path, name: "other.key")
          try await withAgentCluster(configure: { spec in
            spec.s3 = moto.backupConfig(bucket: "snaps", folder: "prod")
            spec.s3InsecureHTTP = true
            spec.lifeboatSettings = ["encryption:", "  age_recipients: [\"\(recipient)\"]"]
          }) { cluster in
            let written = try await writeKeys(cluster, count: 2_000)
            let save = try await LifeboatCLI.run(["snapshot", "save", "--config", cluster.configFile, "--name", "sealed"])
            #expect(save.status == 0, "\(save.stderr)")
            #expect(save.stdout.contains("uploaded  s3://snaps/prod/sealed.zip.age"), "\(save.stdout)")
            let listing = try await moto.aws(["s3", "ls", "s3://snaps/prod/"]).stdout
            #expect(listing.contains("sealed.zip.age") && listing.contains("sealed.manifest.json"))
            #expect(!listing.contains("sealed.zip\n") && !listing.contains("sealed.zip "), "no plain copy in the bucket: \(listing)")

            // The nodes keep plain RKE archives; `age -d` turns the bucket's object into the same bytes.
            let local = cluster.members[0].snapshotDir! + "/sealed.zip"
            #expect(FileManager.default.fileExists(atPath: local))
            let object = keys.file("sealed.zip.age")
            #expect(try await moto.aws(["s3", "cp", "s3://snaps/prod/sealed.zip.age", object]).status == 0)
            let decrypted = keys.file("decrypted.zip")
            let age = try await ProcessRunner.run(ProcessRunner.which("age") ?? "/usr/bin/age", ["-d", "-i", identity, "-o", decrypted, object])
            #expect(age.status == 0, "\(age.stderr)")
            #expect(try Self.sha256(decrypted) == Self.sha256(local), "age decrypts Lifeboat's object to the node's archive")
            // The bucket's manifest says so, with both hashes and no key.
            #expect(try await moto.aws(["s3", "cp", "s3://snaps/prod/sealed.manifest.json", keys.file("m.json")]).status == 0)
            let manifest = try Manifest.decode([UInt8](try Data(contentsOf: URL(fileURLWithPath: keys.file("m.json")))), path: "m")
            #expect(manifest.encryption?.recipients == [recipient])
            #expect(manifest.encryption?.objectSHA256 == (try Self.sha256(object)))
            #expect(manifest.archiveSHA256 == (try Self.sha256(local)))
            let secret = try String(contentsOfFile: identity, encoding: .utf8).split(separator: "\n").first { $0.hasPrefix("AGE-SECRET-KEY") }!
            #expect(!(try String(contentsOfFile: keys.file("m.json"), encoding: .utf8)).contains(secret))

            // verify in the bucket: with the identity it passes; without, or with another, one line and exit 2.
            let flags = s3Flags(moto.endpoint) + ["--snapshot-dir", keys.file("none")]
            let verify = try await LifeboatCLI.run(["snapshot", "verify", "sealed"] + flags + ["--age-identity", identity])
            #expect(verify.status == 0, "\(verify.stderr)")
            #expect(verify.stdout.contains("database SHA-256 matches the manifest"), "\(verify.stdout)")
            let without = try await LifeboatCLI.run(["snapshot", "verify", "sealed"] + flags)
            #expect(without.status == 2, "\(without.stderr)")
            #expect(without.stderr.contains("sealed.zip.age is encrypted (age): give --age-identity"), "\(without.stderr)")
            let wrong = try await LifeboatCLI.run(["snapshot", "verify", "sealed"] + flags + ["--age-identity", other])
            #expect(wrong.status == 2, "\(wrong.stderr)")
            #expect(wrong.stderr.contains("no --age-identity opens"), "\(wrong.stderr)")
            #expect(wrong.stderr.split(separator: "\n").filter { $0.contains("error") }.count == 1)

            try await RestoreTests.diverge(cluster)
            let changed = try await RestoreTests.keys(cluster, member: 0)

            // Refused before any node changes: no identity; a tampered object.
            let noIdentity = try await RestoreTests.restore(cluster, "sealed", ["--s3"])
            #expect(noIdentity.status == 2, "\(noIdentity.stderr)")
            var bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: object)))
            bytes[bytes.count - 1000] ^= 0x40
            try Data(bytes).write(to: URL(fileURLWithPath: keys.file("tampered.age")))
            #expect(try await moto.aws(["s3", "cp", keys.file("tampered.age"), "s3://snaps/prod/sealed.zip.age"]).status == 0)
            let tampered = try await RestoreTests.restore(cluster, "sealed", ["--s3", "--age-identity", identity])
            #expect(tampered.status == 4, "\(tampered.stderr)")
            #expect(tampered.stderr.contains("does not authenticate"), "\(tampered.stderr)")
            for index in 0..<3 { #expect(try await RestoreTests.keys(cluster, member: index) == changed, "node \(index) untouched") }

            // The real object back: restored on all three, the identity given to the CLI only.
            #expect(try await moto.aws(["s3", "cp", object, "s3://snaps/prod/sealed.zip.age"]).status == 0)
            let restore = try await RestoreTests.restore(cluster, "sealed", ["--s3", "--age-identity", identity])
            #expect(restore.status == 0, "\(restore.stderr)")
            #expect(restore.stdout.contains("age-encrypted"), "\(restore.stdout)")
            for index in 0..<3 { #expect(try await RestoreTests.keys(cluster, member: index) == written) }
            let logs = cluster.members.compactMap { try? String(contentsOfFile: $0.runDir + "/agent.log", encoding: .utf8) }.joined()
            #expect(!(logs + restore.stdout + restore.stderr).contains(secret), "the identity is never logged")
          }
        }
      }
    }

    /// `save --age-recipient --age-encrypt-local` without S3 or cluster.yml: the only copy is the
    /// encrypted one, `age -d` opens it, and verify reads it with the identity.
    @Test func aLocalSaveFromTheCommandLineIsEncryptedOnDisk() async throws {
      try await withEtcdCluster(nodes: 1) { cluster in
        _ = try await writeKeys(cluster, count: 300, size: 1024)
        try await withTemporaryDirectory { keys in
          let (identity, recipient) = try await Self.keygen(keys.path)
          let dir = cluster.directory.file("snapshots")
          let save = try await LifeboatCLI.run(
            ["snapshot", "save", "--name", "sealed-here", "--snapshot-dir", dir, "--age-recipient", recipient, "--age-encrypt-local"]
              + cluster.connectionFlags)
          #expect(save.status == 0, "\(save.stderr)")
          let object = dir + "/sealed-here.zip.age"
          #expect(!FileManager.default.fileExists(atPath: dir + "/sealed-here.zip"), "no plain copy")
          let mode = try FileManager.default.attributesOfItem(atPath: object)[.posixPermissions] as? Int
          #expect(mode == 0o600)
          let manifest = try Manifest.decode(
            [UInt8](try Data(contentsOf: URL(fileURLWithPath: dir + "/sealed-here.manifest.json"))), path: "m")
          #expect(manifest.encryption?.recipients == [recipient])
          #expect(manifest.encryption?.objectSHA256 == (try Self.sha256(object)))

          let plain = keys.file("plain.zip")
          let age = try await ProcessRunner.run(ProcessRunner.which("age") ?? "/usr/bin/age", ["-d", "-i", identity, "-o", plain, object])
          #expect(age.status == 0, "\(age.stderr)")
          #expect(try Self.sha256(plain) == manifest.archiveSHA256)
          let db = keys.file("db")
          try await pythonExtract(plain, entry: "/backup/sealed-here", to: db)
          #expect(try await sha256sum(db) == manifest.dbSHA256)

          let verify = try await LifeboatCLI.run(["snapshot", "verify", "sealed-here", "--snapshot-dir", dir, "--age-identity", identity])
          #expect(verify.status == 0, "\(verify.stderr)")
          #expect(verify.stdout.contains("database SHA-256 matches the manifest"), "\(verify.stdout)")
          #expect(verify.stdout.contains("the encrypted object's SHA-256 and size match the manifest"), "\(verify.stdout)")
          let list = try await LifeboatCLI.run(["snapshot", "list", "--snapshot-dir", dir])
          #expect(list.stdout.contains("sealed-here") && list.stdout.contains("age-encrypted"), "\(list.stdout)")

          // The same plaintext sealed again by `age` (another file key): every plaintext check
          // passes, but the object is not the one the manifest describes.
          let again = try await ProcessRunner.run(
            ProcessRunner.which("age") ?? "/usr/bin/age", ["-r", recipient, "-o", object + ".new", plain])
          #expect(again.status == 0, "\(again.stderr)")
          try FileManager.default.removeItem(atPath: object)
          try FileManager.default.moveItem(atPath: object + ".new", toPath: object)
          let resealed = try await LifeboatCLI.run(["snapshot", "verify", "sealed-here", "--snapshot-dir", dir, "--age-identity", identity])
          #expect(resealed.status == 4, "\(resealed.stdout) \(resealed.stderr)")
          #expect(resealed.stderr.contains("the encrypted object's SHA-256 is"), "\(resealed.stderr)")

          // A manifest that records no encryption (an archive sealed by hand beside it): the
          // plaintext checks pass, and verify says the sealed object had nothing to compare with.
          var unsealedManifest = manifest
          unsealedManifest.encryption = nil
          try Data(try unsealedManifest.encoded()).write(to: URL(fileURLWithPath: dir + "/sealed-here.manifest.json"))
          let unchecked = try await LifeboatCLI.run(["snapshot", "verify", "sealed-here", "--snapshot-dir", dir, "--age-identity", identity])
          #expect(unchecked.status == 0, "\(unchecked.stderr)")
          #expect(unchecked.stdout.contains("note: the manifest records no encryption"), "\(unchecked.stdout)")
        }
      }
    }

    /// `encrypt_local`: the nodes' copies are the bucket's encrypted bytes; a restore from a node
    /// needs the identity, checks it before anything changes, and brings the data back.
    @Test func encryptLocalKeepsOnlyEncryptedCopiesAndRestoresFromANode() async throws {
      try await withMotoServer { moto in
        try await moto.createBucket("snaps")
        try await withTemporaryDirectory { keys in
          let (identity, recipient) = try await Self.keygen(keys.path)
          let (other, _) = try await Self.keygen(keys.path, name: "other.key")
          try await withAgentCluster(configure: { spec in
            spec.s3 = moto.backupConfig(bucket: "snaps")
            spec.s3InsecureHTTP = true
            spec.lifeboatSettings = ["encryption:", "  age_recipients: [\"\(recipient)\"]", "  encrypt_local: true"]
          }) { cluster in
            let written = try await writeKeys(cluster, count: 1_500)
            let save = try await LifeboatCLI.run(["snapshot", "save", "--config", cluster.configFile, "--name", "sealed-everywhere"])
            #expect(save.status == 0, "\(save.stderr)")
            let object = keys.file("bucket.zip.age")
            #expect(try await moto.aws(["s3", "cp", "s3://snaps/sealed-everywhere.zip.age", object]).status == 0)
            for member in cluster.members {
              let dir = member.snapshotDir!
              #expect(!FileManager.default.fileExists(atPath: dir + "/sealed-everywhere.zip"), "no plain copy on \(member.address)")
              #expect(try Self.sha256(dir + "/sealed-everywhere.zip.age") == Self.sha256(object), "the bucket's bytes on \(member.address)")
            }
            let decrypted = keys.file("plain.zip")
            let age = try await ProcessRunner.run(
              ProcessRunner.which("age") ?? "/usr/bin/age", ["-d", "-i", identity, "-o", decrypted, cluster.members[1].snapshotDir! + "/sealed-everywhere.zip.age"])
            #expect(age.status == 0, "\(age.stderr)")
            let unzip = try await ProcessRunner.run("/usr/bin/unzip", ["-l", decrypted])
            #expect(unzip.stdout.contains("backup/sealed-everywhere"), "an RKE archive inside: \(unzip.stdout)")

            try await RestoreTests.diverge(cluster)
            let changed = try await RestoreTests.keys(cluster, member: 0)
            let without = try await RestoreTests.restore(cluster, "sealed-everywhere")
            #expect(without.status == 2, "\(without.stderr)")
            #expect(without.stderr.contains("is encrypted (age): give --age-identity"), "\(without.stderr)")
            let wrong = try await RestoreTests.restore(cluster, "sealed-everywhere", ["--age-identity", other])
            #expect(wrong.status == 2, "\(wrong.stderr)")
            for index in 0..<3 { #expect(try await RestoreTests.keys(cluster, member: index) == changed, "node \(index) untouched") }

            let dry = try await LifeboatCLI.run(
              ["snapshot", "restore", "sealed-everywhere", "--config", cluster.configFile, "--dry-run", "--age-identity", identity])
            #expect(dry.status == 0, "\(dry.stderr)")
            #expect(dry.stdout.contains("database SHA-256 matches the manifest"), "\(dry.stdout)")
            #expect(dry.stdout.contains("the encrypted object's SHA-256 and size match the manifest"), "\(dry.stdout)")

            let restore = try await RestoreTests.restore(cluster, "sealed-everywhere", ["--age-identity", identity])
            #expect(restore.status == 0, "\(restore.stderr)")
            #expect(restore.stdout.contains("from:    local on 127.0.0.11 (age-encrypted"), "\(restore.stdout)")
            for index in 0..<3 { #expect(try await RestoreTests.keys(cluster, member: index) == written) }
          }
        }
      }
    }

    /// Agents read cluster.yml when they start: a save through agents that encrypt otherwise than
    /// the file now says is refused (it would have stored plain copies), and status shows theirs.
    @Test func aSaveThroughAgentsThatReadAnOlderEncryptionSettingIsRefused() async throws {
      try await withMotoServer { moto in
        try await moto.createBucket("snaps")
        try await withTemporaryDirectory { keys in
          let (_, recipient) = try await Self.keygen(keys.path)
          try await withAgentCluster(nodes: 1, configure: { spec in
            spec.s3 = moto.backupConfig(bucket: "snaps")
            spec.s3InsecureHTTP = true
          }) { cluster in
            var yaml = try String(contentsOfFile: cluster.configFile, encoding: .utf8)
            yaml += "  encryption:\n    age_recipients: [\"\(recipient)\"]\n"
            try Data(yaml.utf8).write(to: URL(fileURLWithPath: cluster.configFile))
            let save = try await LifeboatCLI.run(["snapshot", "save", "--config", cluster.configFile, "--name", "stale"])
            #expect(save.status == 2, "\(save.stderr)")
            #expect(save.stderr.contains("the agent on 127.0.0.11 encrypts nothing, but"), "\(save.stderr)")
            #expect(save.stderr.contains("restart the agents"), "\(save.stderr)")
            #expect(!(try await moto.aws(["s3", "ls", "s3://snaps/"]).stdout.contains("stale")), "nothing uploaded")
            #expect(!FileManager.default.fileExists(atPath: cluster.members[0].snapshotDir! + "/stale.zip"))

            try await cluster.restartAgent(0)
            let status = try await LifeboatCLI.run(["status", "--config", cluster.configFile])
            #expect(status.stdout.contains("encrypts  age to \(recipient) (S3 copies)"), "\(status.stdout)")
            let again = try await LifeboatCLI.run(["snapshot", "save", "--config", cluster.configFile, "--name", "fresh"])
            #expect(again.status == 0, "\(again.stderr)")
            #expect(again.stdout.contains("uploaded  s3://snaps/fresh.zip.age"), "\(again.stdout)")
          }
        }
      }
    }

    /// The recurring run's catch-up of S3 (snapshots a failed upload left local) encrypts too:
    /// never a plain copy in the bucket.
    @Test func theCatchUpOfS3EncryptsAsTheSaveDoes() async throws {
      try await withMotoServer { moto in
        try await moto.createBucket("snaps")
        let down = Flag()
        let proxy = try await S3FaultProxy.start(upstream: moto.endpoint) { _ in down.value ? .fail(status: 503) : .forward }
        try await withCleanup({
          try await withTemporaryDirectory { keys in
            let (identity, recipient) = try await Self.keygen(keys.path)
            try await withAgentCluster(nodes: 1, configure: { spec in
              spec.s3 = moto.backupConfig(bucket: "snaps")
              spec.s3?.endpoint = proxy.endpoint
              spec.s3InsecureHTTP = true
              spec.lifeboatSettings = ["interval_seconds: 3600", "encryption:", "  age_recipients: [\"\(recipient)\"]"]
            }) { cluster in
              down.value = true
              let failed = try await ScheduleTests.runNow(cluster)
              #expect(failed.failures == 1)
              down.value = false
              try await ScheduleTests.waitForNextSecond(after: failed.lastRun)
              let ok = try await ScheduleTests.runNow(cluster)
              #expect(ok.lastResult == .ok, "\(String(describing: ok.lastResult))")
              let listing = try await moto.aws(["s3", "ls", "s3://snaps/"]).stdout
              let objects = listing.split(separator: "\n").map { String($0.split(separator: " ").last ?? "") }
              #expect(objects.filter { $0.hasSuffix("_etcd.zip.age") }.count == 2, "both runs, encrypted: \(listing)")
              #expect(!objects.contains { $0.hasSuffix(".zip") }, "no plain archive in the bucket: \(listing)")
              // Each decrypts (with the operator's key) to a snapshot that verifies.
              for object in objects where object.hasSuffix(".zip.age") {
                let name = String(object.dropLast(".zip.age".count))
                let verify = try await LifeboatCLI.run(
                  ["snapshot", "verify", name, "--snapshot-dir", keys.file("none"), "--age-identity", identity]
                    + s3Flags(moto.endpoint, folder: ""))
                #expect(verify.status == 0, "\(name): \(verify.stderr)")
              }
            }
          }
        }, cleanup: { await proxy.stop() })
      }
    }

    /// An RKE archive (no manifest) encrypted by the `age` CLI and put in the bucket by hand.
    @Test func lifeboatRestoresAnArchiveEncryptedByAge() async throws {
      try await withMotoServer { moto in
        try await moto.createBucket("snaps")
        try await withTemporaryDirectory { keys in
          let (identity, recipient) = try await Self.keygen(keys.path)
          try await withAgentCluster(configure: { spec in
            spec.s3 = moto.backupConfig(bucket: "snaps", folder: "prod")
            spec.s3InsecureHTTP = true
          }) { cluster in
            let written = try await writeKeys(cluster, count: 1_000)
            _ = try await RestoreTests.save(cluster, "handmade")
            let plain = cluster.members[0].snapshotDir! + "/handmade.zip"
            let sealed = keys.file("handmade.zip.age")
            let age = try await ProcessRunner.run(ProcessRunner.which("age") ?? "/usr/bin/age", ["-r", recipient, "-o", sealed, plain])
            #expect(age.status == 0, "\(age.stderr)")
            _ = try await moto.aws(["s3", "rm", "s3://snaps/prod/handmade.zip"])
            _ = try await moto.aws(["s3", "rm", "s3://snaps/prod/handmade.manifest.json"])
            #expect(try await moto.aws(["s3", "cp", sealed, "s3://snaps/prod/handmade.zip.age"]).status == 0)
            for member in cluster.members {
              try FileManager.default.removeItem(atPath: member.snapshotDir! + "/handmade.zip")
              try? FileManager.default.removeItem(atPath: member.snapshotDir! + "/handmade.manifest.json")
            }
            try await RestoreTests.diverge(cluster)
            let restore = try await RestoreTests.restore(cluster, "handmade", ["--age-identity", identity])
            #expect(restore.status == 0, "\(restore.stderr)")
            #expect(restore.stdout.contains("from:    s3://snaps/prod/handmade.zip.age"), "\(restore.stdout)")
            for index in 0..<3 { #expect(try await RestoreTests.keys(cluster, member: index) == written) }
          }
        }
      }
    }
  }
}
