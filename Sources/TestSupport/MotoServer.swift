#if canImport(Glibc)
import Glibc
#endif
import Foundation
import LifeboatCore
import LifeboatEngine
import SnapshotStores

/// A real S3-compatible server for tests: `python3 -m moto.server` (PyPI `moto[server]`) on
/// 127.0.0.1 with a free port, plain HTTP or HTTPS with a certificate from a test CA. Stopped by
/// PID. moto accepts any signature (until `resetAuth()`), so tests use any keys.
public final class MotoServer: Sendable {
  public let port: Int
  public let secure: Bool
  public let directory: TemporaryDirectory
  /// PEM of the CA that signed the HTTPS certificate (HTTPS servers only).
  public let caPEM: String?
  private let pid: Int32

  private init(port: Int, secure: Bool, directory: TemporaryDirectory, caPEM: String?, pid: Int32) {
    self.port = port
    self.secure = secure
    self.directory = directory
    self.caPEM = caPEM
    self.pid = pid
  }

  public var endpoint: String { "\(secure ? "https" : "http")://127.0.0.1:\(port)" }

  public static func start(https: Bool = false) async throws -> MotoServer {
    let directory = try TemporaryDirectory(prefix: "lifeboat-moto")
    let port = try freeTCPPort(on: "127.0.0.1")
    var arguments = ["-m", "moto.server", "-H", "127.0.0.1", "-p", "\(port)"]
    var caPEM: String?
    if https {
      let ca = try CertificateAuthority(commonName: "moto-test-ca")
      let leaf = try ca.issue(commonName: "127.0.0.1", ipAddresses: ["127.0.0.1"], dnsNames: ["localhost"])
      try Data(leaf.certificatePEM.utf8).write(to: URL(fileURLWithPath: directory.file("cert.pem")))
      try Data(leaf.keyPEM.utf8).write(to: URL(fileURLWithPath: directory.file("key.pem")))
      arguments += ["-c", directory.file("cert.pem"), "-k", directory.file("key.pem")]
      caPEM = ca.certificatePEM
    }
    let python = ProcessRunner.which("python3") ?? "/usr/bin/python3"
    let pid = try DetachedProcess.spawn(executable: python, arguments: arguments, logFile: directory.file("moto.log"))
    let server = MotoServer(port: port, secure: https, directory: directory, caPEM: caPEM, pid: pid)
    for _ in 0..<300 {
      if Self.accepts(port: port) {
        try await Task.sleep(for: .milliseconds(100))
        return server
      }
      guard DetachedProcess.isRunning(pid) else { break }
      try await Task.sleep(for: .milliseconds(50))
    }
    let log = (try? String(contentsOfFile: directory.file("moto.log"), encoding: .utf8)) ?? ""
    await server.stop()
    throw LifeboatError.failure("moto did not start on port \(port): \(log.suffix(400))")
  }

  /// Stops the server from answering (SIGSTOP): connections open, requests hang, as a server
  /// that hangs would. `resume()` (or `stop()`) lets it go on.
  public func pause() { kill(pid, SIGSTOP) }

  public func resume() { kill(pid, SIGCONT) }

  public func stop() async {
    resume()
    await DetachedProcess.stop(pid, timeout: .seconds(5))
    directory.remove()
  }

  /// A configuration for `bucket` on this server (any keys do for moto).
  public func configuration(bucket: String, folder: String = "", partSize: Int = 5 << 20) throws -> S3Configuration {
    var configuration = S3Configuration(
      endpoint: try S3Endpoint(parsing: endpoint, allowInsecureHTTP: true), bucket: bucket, folder: folder,
      credentials: S3Credentials(accessKey: "lifeboat-test", secretKey: Secret("lifeboat-test-secret")),
      customCA: caPEM.map { Array($0.utf8) })
    configuration.partSize = partSize
    configuration.retry = RetryPolicy(attempts: 4, baseDelay: .milliseconds(50), maxDelay: .milliseconds(400))
    return configuration
  }

  /// The `s3backupconfig` of a cluster.yml for `bucket` on this server, with the same test keys.
  public func backupConfig(bucket: String, folder: String? = nil) -> S3BackupConfig {
    S3BackupConfig(
      accessKey: "lifeboat-test", secretKey: "lifeboat-test-secret", bucketName: bucket, region: "us-east-1",
      endpoint: endpoint, folder: folder)
  }

  /// Creates `bucket` through the S3 API.
  public func createBucket(_ bucket: String) async throws {
    try await S3Store.with(try configuration(bucket: bucket)) { try await $0.createBucket() }
  }

  /// Switches moto to checking signatures against keys made through its IAM API. After this,
  /// only such keys are accepted (use a separate server for wrong-credential tests).
  public func resetAuth() async throws {
    let result = try await ProcessRunner.run(
      "/usr/bin/env",
      [
        "python3", "-c",
        "import urllib.request,sys; urllib.request.urlopen(urllib.request.Request(sys.argv[1] + '/moto-api/reset-auth', data=b'0', method='POST', headers={'Content-Type': 'text/plain'})).read()",
        endpoint,
      ])
    guard result.status == 0 else { throw LifeboatError.failure("moto reset-auth failed: \(result.stderr)") }
  }

  /// Makes an IAM user allowed to do everything and returns its keys (for auth-mode tests:
  /// call before `resetAuth()`).
  public func makeIAMKeys() async throws -> (accessKey: String, secretKey: String) {
    _ = try await aws(["iam", "create-user", "--user-name", "lifeboat"])
    let policy = #"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}"#
    _ = try await aws(["iam", "put-user-policy", "--user-name", "lifeboat", "--policy-name", "all", "--policy-document", policy])
    let created = try await aws(["iam", "create-access-key", "--user-name", "lifeboat", "--output", "json"])
    struct Response: Decodable {
      struct Key: Decodable {
        var AccessKeyId: String
        var SecretAccessKey: String
      }
      var AccessKey: Key
    }
    let key = try JSONDecoder().decode(Response.self, from: Data(created.stdout.utf8)).AccessKey
    return (key.AccessKeyId, key.SecretAccessKey)
  }

  /// What the server logged: one line per request (method, path, status), for checks of
  /// which endpoints (STS, IMDS) were asked.
  public var requestLog: String {
    (try? String(contentsOfFile: directory.file("moto.log"), encoding: .utf8)) ?? ""
  }

  /// `aws` CLI against this server (awscli from PyPI), for interoperability checks.
  public func aws(_ arguments: [String]) async throws -> ProcessResult {
    try await ProcessRunner.run(
      ProcessRunner.which("aws") ?? "aws", ["--endpoint-url", endpoint, "--region", "us-east-1"] + arguments,
      environment: [
        "AWS_ACCESS_KEY_ID": "lifeboat-test", "AWS_SECRET_ACCESS_KEY": "lifeboat-test-secret",
        "AWS_EC2_METADATA_DISABLED": "true", "AWS_PAGER": "",
      ])
  }

  static func accepts(port: Int) -> Bool {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { return false }
    defer { close(fd) }
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_port = in_port_t(UInt16(port).bigEndian)
    inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr)
    return withUnsafePointer(to: &addr) {
      $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    } == 0
  }
}

/// Runs `body` with a started moto server, stopped afterwards whatever happens.
public func withMotoServer<R>(https: Bool = false, _ body: (MotoServer) async throws -> R) async throws -> R {
  let server = try await MotoServer.start(https: https)
  return try await withCleanup({ try await body(server) }, cleanup: { await server.stop() })
}
