import Foundation
import LifeboatCore
import LifeboatEngine
import SnapshotStores
import TestSupport
import Testing

extension Integration {
  /// Saving to S3 and reading from it, against a real moto server; faults from `S3FaultProxy`.
  @Suite struct S3Tests {
    static func objects(_ moto: MotoServer, bucket: String = "snaps", folder: String = "prod") async throws -> [String] {
      try await S3Store.with(try moto.configuration(bucket: bucket, folder: folder)) { try await $0.list().map(\.key) }
    }

    static func unfinishedUploads(_ moto: MotoServer) async throws -> Int {
      try await S3Store.with(try moto.configuration(bucket: "snaps")) { try await $0.unfinishedUploads().count }
    }

    @Test func saveUploadsInOnePassAndTheAWSCLIReadsIt() async throws {
      try await withMotoServer { moto in
        try await moto.createBucket("snaps")
        try await withEtcdCluster(nodes: 1) { cluster in
          try await writeRandom(cluster, mib: 20)
          let dir = cluster.directory.file("snapshots")
          let save = try await LifeboatCLI.run(
            ["snapshot", "save", "--name", "upload-test", "--snapshot-dir", dir] + cluster.connectionFlags + s3Flags(moto.endpoint))
          #expect(save.status == 0, "\(save.stderr)")
          #expect(save.stdout.contains("uploaded  s3://snaps/prod/upload-test.zip"))
          let manifest = try Manifest.decode(
            [UInt8](try Data(contentsOf: URL(fileURLWithPath: dir + "/upload-test.manifest.json"))), path: "")
          #expect(manifest.archiveSize > 16 << 20, "the archive spans several 8 MiB parts")

          let listing = try await moto.aws(["s3", "ls", "s3://snaps/prod/"])
          #expect(listing.status == 0, "\(listing.stderr)")
          #expect(listing.stdout.contains("upload-test.zip"))
          #expect(listing.stdout.contains("upload-test.manifest.json"))
          let downloaded = cluster.directory.file("downloaded.zip")
          let copy = try await moto.aws(["s3", "cp", "s3://snaps/prod/upload-test.zip", downloaded])
          #expect(copy.status == 0, "\(copy.stderr)")
          #expect(try await sha256sum(downloaded) == manifest.archiveSHA256)
          #expect(try await sha256sum(dir + "/upload-test.zip") == manifest.archiveSHA256)
          #expect(try await Self.unfinishedUploads(moto) == 0)

          let verify = try await LifeboatCLI.run(["snapshot", "verify", "upload-test", "--snapshot-dir", dir] + s3Flags(moto.endpoint))
          #expect(verify.status == 0, "\(verify.stderr)")
          #expect(verify.stdout.contains("s3://snaps/prod/upload-test.zip"))

          let list = try await LifeboatCLI.run(["snapshot", "list", "--json", "--snapshot-dir", dir] + s3Flags(moto.endpoint))
          struct Row: Decodable { var name: String; var locations: [String] }
          let rows = try JSONDecoder().decode([Row].self, from: Data(list.stdout.utf8))
          #expect(rows.map(\.name) == ["upload-test"])
          #expect(rows.first?.locations == ["local", "s3"])

          let delete = try await LifeboatCLI.run(["snapshot", "delete", "upload-test", "--snapshot-dir", dir] + s3Flags(moto.endpoint))
          #expect(delete.status == 0, "\(delete.stderr)")
          #expect(try await Self.objects(moto).isEmpty)
          #expect(cluster.directory.contents(of: "snapshots").isEmpty)
        }
      }
    }

    /// An RKE bucket: an archive zipped by other tools and copied up with `aws s3 cp` under
    /// `folder/<name>.zip` is listed, verified and downloaded; names match exactly.
    @Test func anRKEBucketIsReadable() async throws {
      try await withMotoServer { moto in
        try await moto.createBucket("snaps")
        try await withEtcdCluster(nodes: 1) { cluster in
          _ = try await writeKeys(cluster, count: 500)
          let raw = cluster.directory.file("myname")
          #expect(try await etcdctl(["--endpoints", cluster.endpoints[0], "snapshot", "save", raw]).status == 0)
          let zip = cluster.directory.file("myname.zip")
          let zipped = try await ProcessRunner.run(
            "/usr/bin/env",
            ["python3", "-c", "import zipfile,sys; z=zipfile.ZipFile(sys.argv[1],'w',zipfile.ZIP_DEFLATED); z.write(sys.argv[2], '/backup/myname'); z.close()", zip, raw])
          #expect(zipped.status == 0)
          #expect(try await moto.aws(["s3", "cp", zip, "s3://snaps/prod/myname.zip"]).status == 0)
          #expect(try await moto.aws(["s3", "cp", zip, "s3://snaps/prod/myname1.zip"]).status == 0)

          let dir = cluster.directory.file("snapshots")
          let list = try await LifeboatCLI.run(["snapshot", "list", "--json", "--snapshot-dir", dir] + s3Flags(moto.endpoint))
          struct Row: Decodable { var name: String; var manifest: Bool; var locations: [String] }
          let rows = try JSONDecoder().decode([Row].self, from: Data(list.stdout.utf8))
          #expect(rows.map(\.name) == ["myname", "myname1"])
          #expect(rows.allSatisfy { !$0.manifest && $0.locations == ["s3"] })
          let verify = try await LifeboatCLI.run(["snapshot", "verify", "myname", "--snapshot-dir", dir] + s3Flags(moto.endpoint))
          #expect(verify.status == 0, "\(verify.stderr)")
          let missing = try await LifeboatCLI.run(["snapshot", "verify", "myna", "--snapshot-dir", dir] + s3Flags(moto.endpoint))
          #expect(missing.status == 3, "myna must match neither myname nor myname1")

          // Downloaded through the store: the same bytes.
          let bytes = try await S3Store.with(try moto.configuration(bucket: "snaps", folder: "prod")) { store in
            try await store.readAll("myname.zip", limit: 1 << 30)
          }
          let local = try Data(contentsOf: URL(fileURLWithPath: zip))
          #expect(bytes == [UInt8](local))
        }
      }
    }

    @Test func aWrongSecretIsAOneLineAuthErrorWithoutTheSecret() async throws {
      try await withMotoServer { moto in
        let keys = try await moto.makeIAMKeys()
        try await moto.createBucket("snaps")
        try await moto.resetAuth()
        let dir = moto.directory.file("snapshots")
        let wrong = "Wr0ngSecretValue/xyz"
        let run = try await LifeboatCLI.run(
          ["snapshot", "save", "--snapshot-dir", dir, "--endpoints", "http://127.0.0.1:9", "--s3", "--s3-endpoint", moto.endpoint,
           "--s3-insecure-http", "--bucket-name", "snaps", "--access-key", keys.accessKey, "--secret-key", wrong])
        #expect(run.status == 6, "\(run.stderr)")
        #expect(run.stderr.contains("access denied"), "\(run.stderr)")
        #expect(run.stderr.contains(moto.endpoint))
        #expect(run.stderr.contains("snaps"))
        #expect(run.stderr.split(separator: "\n").count == 1, "one line: \(run.stderr)")
        #expect(!run.stderr.contains(wrong))
        #expect(!run.stderr.contains(keys.secretKey))
        #expect(!FileManager.default.fileExists(atPath: dir))
      }
    }

    @Test func aMissingBucketAndAnUnreachableEndpointAreClearErrors() async throws {
      try await withMotoServer { moto in
        let dir = moto.directory.file("snapshots")
        let missing = try await LifeboatCLI.run(
          ["snapshot", "save", "--snapshot-dir", dir, "--endpoints", "http://127.0.0.1:9"] + s3Flags(moto.endpoint, bucket: "nope"))
        #expect(missing.status == 6)
        #expect(missing.stderr.contains("bucket nope not found"), "\(missing.stderr)")

        let closed = "http://127.0.0.1:\(try freeTCPPort(on: "127.0.0.1"))"
        let unreachable = try await LifeboatCLI.run(
          ["snapshot", "list", "--snapshot-dir", dir] + s3Flags(closed))
        #expect(unreachable.status == 6)
        // Retries are logged at debug level: by default the final error is the only error line.
        #expect(!unreachable.stderr.contains("attempt 2 of 5"), "\(unreachable.stderr)")
        #expect(unreachable.stderr.split(separator: "\n").filter { $0.contains("error") }.count == 1, "\(unreachable.stderr)")
        let last = unreachable.stderr.split(separator: "\n").last.map(String.init) ?? ""
        #expect(last.hasPrefix("lifeboat: error:") && last.contains("connection refused"), "\(last)")
        let debug = try await LifeboatCLI.run(
          ["snapshot", "list", "--snapshot-dir", dir] + s3Flags(closed), environment: ["LIFEBOAT_LOG_LEVEL": "debug"])
        #expect(debug.status == 6)
        #expect(debug.stderr.contains("attempt 2 of 5"), "retried, as debug shows: \(debug.stderr)")
        #expect(!FileManager.default.fileExists(atPath: dir))
      }
    }

    @Test func failedPartsAreRetriedAndTheUploadCompletes() async throws {
      try await withMotoServer { moto in
        try await moto.createBucket("snaps")
        let proxy = try await S3FaultProxy.start(upstream: moto.endpoint) { request in
          guard request.isPartUpload, request.attempt == 1 else { return .forward }
          if request.uri.contains("partNumber=1&") || request.uri.hasSuffix("partNumber=1") { return .fail(status: 500) }
          if request.uri.contains("partNumber=2") { return .drop }
          return .forward
        }
        try await withEtcdCluster(nodes: 1) { cluster in
          try await writeRandom(cluster, mib: 20)
          let dir = cluster.directory.file("snapshots")
          let save = try await LifeboatCLI.run(
            ["snapshot", "save", "--name", "flaky", "--snapshot-dir", dir] + cluster.connectionFlags + s3Flags(proxy.endpoint))
          #expect(save.status == 0, "\(save.stderr)")
          #expect(proxy.log.contains { $0.contains("partNumber=1") && $0.contains("#2 -> forward") }, "\(proxy.log)")
          #expect(proxy.log.contains { $0.contains("partNumber=2") && $0.contains("#2 -> forward") }, "\(proxy.log)")
          let bytes = try await S3Store.with(try moto.configuration(bucket: "snaps", folder: "prod")) {
            try await $0.readAll("flaky.zip", limit: 1 << 30)
          }
          #expect(sha256Hex(bytes) == (try await sha256sum(dir + "/flaky.zip")))
          #expect(try await Self.unfinishedUploads(moto) == 0)
        }
        await proxy.stop()
      }
    }

    @Test func anUploadCutForGoodLeavesNoObjectAndKeepsTheLocalArchive() async throws {
      try await withMotoServer { moto in
        try await moto.createBucket("snaps")
        let proxy = try await S3FaultProxy.start(upstream: moto.endpoint) { request in
          request.isPartUpload ? .drop : .forward
        }
        try await withEtcdCluster(nodes: 1) { cluster in
          try await writeRandom(cluster, mib: 20)
          let dir = cluster.directory.file("snapshots")
          let save = try await LifeboatCLI.run(
            ["snapshot", "save", "--name", "cut", "--snapshot-dir", dir] + cluster.connectionFlags + s3Flags(proxy.endpoint))
          #expect(save.status == 6, "\(save.stderr)")
          #expect(save.stderr.contains("is saved, but the upload to s3://snaps/prod failed"), "\(save.stderr)")
          #expect(try await Self.objects(moto).isEmpty)
          #expect(try await Self.unfinishedUploads(moto) == 0)
          let verify = try await LifeboatCLI.run(["snapshot", "verify", "cut", "--snapshot-dir", dir])
          #expect(verify.status == 0, "the local archive is intact: \(verify.stderr)")
        }
        await proxy.stop()
      }
    }

    /// Ctrl-C while parts are uploading: no `.part`, no archive, no object and no unfinished
    /// multipart upload (the abort is sent although the save was cancelled).
    @Test func anInterruptedUploadLeavesNothingAnywhere() async throws {
      try await withMotoServer { moto in
        try await moto.createBucket("snaps")
        try await withEtcdCluster(nodes: 1) { cluster in
          try await writeRandom(cluster, mib: 16)
          let slow = try await TamperingEtcdProxy.start(upstream: cluster.endpoints[0], delayPerMessage: .milliseconds(15))
          let dir = cluster.directory.file("snapshots")
          let process = Process()
          process.executableURL = URL(fileURLWithPath: LifeboatCLI.binary)
          process.arguments = ["snapshot", "save", "--name", "stopped", "--snapshot-dir", dir, "--endpoints", slow.endpoint]
            + s3Flags(moto.endpoint)
          process.standardOutput = FileHandle.nullDevice
          process.standardError = FileHandle.nullDevice
          try process.run()
          var uploading = false
          for _ in 0..<600 where !uploading {
            uploading = try await Self.unfinishedUploads(moto) > 0
            if !uploading { try await Task.sleep(for: .milliseconds(20)) }
          }
          #expect(uploading, "the multipart upload never started")
          kill(process.processIdentifier, SIGINT)
          process.waitUntilExit()
          #expect(process.terminationStatus == 1)
          #expect(try await Self.unfinishedUploads(moto) == 0)
          #expect(try await Self.objects(moto).isEmpty)
          #expect(cluster.directory.contents(of: "snapshots").isEmpty)
          await slow.stop()
        }
      }
    }

    /// A slow upload holds the stream back (bounded memory), but waiting on S3 is not etcd
    /// going silent: with a 2-second idle limit and a part delayed 4 seconds, the save succeeds.
    @Test func aSlowUploadIsNotAStalledStream() async throws {
      try await withMotoServer { moto in
        try await moto.createBucket("snaps")
        let proxy = try await S3FaultProxy.start(upstream: moto.endpoint) { request in
          request.isPartUpload && request.uri.contains("partNumber=1") && request.attempt == 1 ? .delay(.seconds(4)) : .forward
        }
        try await withEtcdCluster(nodes: 1) { cluster in
          try await writeRandom(cluster, mib: 24)
          var connection = cluster.connection
          connection.client.snapshotIdleTimeout = .seconds(2)
          var s3 = try moto.configuration(bucket: "snaps", folder: "prod")
          s3.endpoint = try S3Endpoint(parsing: proxy.endpoint, allowInsecureHTTP: true)
          s3.partsInFlight = 1
          let result = try await S3Store.with(s3) { store in
            try await SnapshotSaver().save(
              SaveRequest(
                connection: connection, store: LocalStore(directory: cluster.directory.file("snapshots")), remote: store,
                name: try SnapshotName("slow")))
          }
          #expect(result.uploadError == nil, "\(String(describing: result.uploadError))")
          #expect(result.remoteArchive == "s3://snaps/prod/slow.zip")
        }
        await proxy.stop()
      }
    }

    @Test func aStreamThatFailsTheTrailerLeavesNoObject() async throws {
      try await withMotoServer { moto in
        try await moto.createBucket("snaps")
        try await withEtcdCluster(nodes: 1) { cluster in
          try await writeRandom(cluster, mib: 12)
          let tampering = try await TamperingEtcdProxy.start(upstream: cluster.endpoints[0], flipOffset: 9_000_000)
          let dir = cluster.directory.file("snapshots")
          let save = try await LifeboatCLI.run(
            ["snapshot", "save", "--name", "bad", "--snapshot-dir", dir, "--endpoints", tampering.endpoint] + s3Flags(moto.endpoint))
          #expect(save.status == 4, "\(save.stderr)")
          #expect(try await Self.objects(moto).isEmpty)
          #expect(try await Self.unfinishedUploads(moto) == 0)
          #expect(cluster.directory.contents(of: "snapshots").isEmpty)
          await tampering.stop()
        }
      }
    }
  }
}

func sha256Hex(_ bytes: [UInt8]) -> String {
  var hash = SHA256Stream()
  hash.update(bytes)
  return hash.finalize()
}
