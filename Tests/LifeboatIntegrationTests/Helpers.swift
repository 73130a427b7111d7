import EtcdClient
import Foundation
import LifeboatCore
import LifeboatEngine
import TestSupport
import Testing

/// Writes `count` keys `/registry/test/<i>` with distinct values; returns them.
func writeKeys(_ cluster: EtcdClusterFixture, count: Int, size: Int = 64) async throws -> [String: [UInt8]] {
  var written: [String: [UInt8]] = [:]
  for i in 0..<count {
    let key = String(format: "/registry/test/%05d", i)
    var value = Array("value-\(i)-".utf8)
    while value.count < size { value.append(UInt8(truncatingIfNeeded: i &* 7 &+ value.count)) }
    written[key] = value
  }
  let pairs = written.sorted { $0.key < $1.key }.map { (key: $0.key, value: $0.value) }
  try await cluster.withClient { client in try await client.putAll(pairs) }
  return written
}

/// Extracts an archive entry with Python's zipfile (an independent reader) to `destination`.
func pythonExtract(_ archive: String, entry: String, to destination: String) async throws {
  let result = try await ProcessRunner.run(
    "/usr/bin/env",
    [
      "python3", "-c",
      "import zipfile,sys; open(sys.argv[3],'wb').write(zipfile.ZipFile(sys.argv[1]).read(sys.argv[2]))",
      archive, entry, destination,
    ])
  #expect(result.status == 0, "\(result.stderr)")
}

func pythonEntryNames(_ archive: String) async throws -> [String] {
  let result = try await ProcessRunner.run(
    "/usr/bin/env",
    ["python3", "-c", "import zipfile,sys; z=zipfile.ZipFile(sys.argv[1]); assert z.testzip() is None; print('\\n'.join(z.namelist()))", archive])
  #expect(result.status == 0, "\(result.stderr)")
  return result.stdout.split(separator: "\n").map(String.init)
}

func sha256sum(_ path: String) async throws -> String {
  let result = try await ProcessRunner.run("/usr/bin/sha256sum", [path])
  return String(result.stdout.prefix(64))
}

func etcdctl(_ arguments: [String]) async throws -> ProcessResult {
  try await ProcessRunner.run(ProcessRunner.which("etcdctl") ?? "/usr/bin/etcdctl", arguments, environment: ["ETCDCTL_API": "3"])
}

func fileMode(_ path: String) throws -> Int {
  try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? Int ?? -1
}

/// Restores `snapshotFile` with `etcdctl snapshot restore` into a fresh single-member etcd and
/// runs `body` with a client of it; the member is stopped afterwards.
func withRestoredMember<R: Sendable>(
  from snapshotFile: String, in directory: TemporaryDirectory, _ body: (EtcdClient) async throws -> R
) async throws -> R {
  let peerPort = try freeTCPPort(on: "127.0.0.1")
  let clientPort = try freeTCPPort(on: "127.0.0.1")
  let dataDir = directory.file("restored-data")
  let restore = try await etcdctl([
    "snapshot", "restore", snapshotFile, "--name", "restored", "--data-dir", dataDir,
    "--initial-cluster", "restored=http://127.0.0.1:\(peerPort)", "--initial-cluster-token", "etcd-cluster-1",
    "--initial-advertise-peer-urls", "http://127.0.0.1:\(peerPort)",
  ])
  #expect(restore.status == 0, "etcdctl snapshot restore: \(restore.stderr)")
  let pid = try DetachedProcess.spawn(
    executable: ProcessRunner.which("etcd") ?? "/usr/bin/etcd",
    arguments: [
      "--name=restored", "--data-dir=\(dataDir)", "--listen-client-urls=http://127.0.0.1:\(clientPort)",
      "--advertise-client-urls=http://127.0.0.1:\(clientPort)", "--listen-peer-urls=http://127.0.0.1:\(peerPort)",
      "--initial-advertise-peer-urls=http://127.0.0.1:\(peerPort)",
      "--initial-cluster=restored=http://127.0.0.1:\(peerPort)", "--logger=zap", "--log-outputs=stderr",
    ], logFile: directory.file("restored.log"))
  defer { DetachedProcess.kill9(pid) }
  let endpoint = try EtcdEndpoint(parsing: "http://127.0.0.1:\(clientPort)")
  return try await EtcdClient.with(endpoint: endpoint) { client in
    for _ in 0..<100 {
      if let status = try? await client.status(), status.hasLeader { break }
      try await Task.sleep(for: .milliseconds(100))
    }
    return try await body(client)
  }
}

/// Writes about `mib` MiB of incompressible values (10 KiB each), so archives span several parts.
func writeRandom(_ cluster: EtcdClusterFixture, mib: Int) async throws {
  var state: UInt64 = 0x1234_5678
  var pairs: [(key: String, value: [UInt8])] = []
  for i in 0..<(mib * 100) {
    let value = (0..<10_240).map { _ -> UInt8 in
      state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
      return UInt8(truncatingIfNeeded: state >> 33)
    }
    pairs.append((key: String(format: "/registry/secrets/%06d", i), value: value))
  }
  try await cluster.withClient { client in try await client.putAll(pairs) }
}

/// `--s3 ...` flags for a bucket on `endpoint` (plain HTTP) with test keys.
func s3Flags(_ endpoint: String, bucket: String = "snaps", folder: String = "prod") -> [String] {
  ["--s3", "--s3-endpoint", endpoint, "--s3-insecure-http", "--bucket-name", bucket, "--folder", folder,
   "--access-key", "lifeboat-test", "--secret-key", "lifeboat-test-secret"]
}

extension Sequence {
  /// `map` for async transforms, in order.
  func asyncMap<T>(_ transform: (Element) async throws -> T) async rethrows -> [T] {
    var out: [T] = []
    for element in self { out.append(try await transform(element)) }
    return out
  }
}
