import Foundation
import LifeboatCore
import LifeboatEngine
import SnapshotStores
import TestSupport
import Testing

extension Integration {
  /// Each source of the AWS credential chain against a real moto server (its STS, its IMDS),
  /// with the requests seen by a recording proxy in front of its S3: the keys a request was
  /// signed with show which source Lifeboat used.
  @Suite struct CredentialSourceTests {
    /// Everything the test runner's own environment might set, emptied (empty means unset).
    static let clean: [String: String] = [
      "AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": "", "AWS_SESSION_TOKEN": "", "AWS_PROFILE": "",
      "AWS_DEFAULT_PROFILE": "", "AWS_ROLE_ARN": "", "AWS_WEB_IDENTITY_TOKEN_FILE": "", "AWS_CONTAINER_CREDENTIALS_FULL_URI": "",
      "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI": "", "AWS_SHARED_CREDENTIALS_FILE": "", "AWS_CONFIG_FILE": "",
      "AWS_EC2_METADATA_DISABLED": "true", "HTTPS_PROXY": "", "HTTP_PROXY": "", "https_proxy": "", "http_proxy": "",
    ]

    /// moto with bucket `snaps`, a recording proxy in front of it, and a scratch directory (the HOME).
    static func withSetup(_ body: (MotoServer, S3FaultProxy, TemporaryDirectory) async throws -> Void) async throws {
      try await withMotoServer { moto in
        try await moto.createBucket("snaps")
        let proxy = try await S3FaultProxy.start(upstream: moto.endpoint) { _ in .forward }
        try await withCleanup({
          try await withTemporaryDirectory { dir in
            try FileManager.default.createDirectory(atPath: dir.file("snapshots"), withIntermediateDirectories: true)
            try await body(moto, proxy, dir)
          }
        }, cleanup: { await proxy.stop() })
      }
    }

    /// `snapshot list --s3` through the proxy, with `environment` (and no keys given unless `flags`).
    static func list(
      _ proxy: S3FaultProxy, _ dir: TemporaryDirectory, environment: [String: String], flags: [String] = []
    ) async throws -> ProcessResult {
      try await LifeboatCLI.run(
        ["snapshot", "list", "--snapshot-dir", dir.file("snapshots"), "--s3", "--s3-endpoint", proxy.endpoint, "--s3-insecure-http",
         "--bucket-name", "snaps"] + flags,
        environment: clean.merging(["HOME": dir.path]) { $1 }.merging(environment) { $1 })
    }

    /// stderr's lines after the one naming the bucket and the key source.
    static func afterTheSourceLine(_ stderr: String) -> [Substring] {
      stderr.split(separator: "\n").filter { !$0.hasPrefix("s3://") }
    }

    /// The access keys of the requests the proxy saw since `from`.
    static func keys(_ proxy: S3FaultProxy, from: Int = 0) -> Set<String> {
      Set(proxy.requests.dropFirst(from).compactMap(\.accessKey))
    }

    @Test func givenKeysThenTheEnvironmentThenProfiles() async throws {
      try await Self.withSetup { _, proxy, dir in
        try """
          [default]
          aws_access_key_id = AKDEFAULTPROFILE
          aws_secret_access_key = default-secret
          [backup]
          aws_access_key_id = AKBACKUPPROFILE
          aws_secret_access_key = backup-secret
          """.write(toFile: dir.file("credentials"), atomically: true, encoding: .utf8)
        let environment = ["AWS_ACCESS_KEY_ID": "AKENVIRONMENT", "AWS_SECRET_ACCESS_KEY": "env-secret", "AWS_SHARED_CREDENTIALS_FILE": dir.file("credentials")]

        let flags = try await Self.list(proxy, dir, environment: environment, flags: ["--access-key", "AKFLAG", "--secret-key", "flag-secret"])
        #expect(flags.status == 0, "\(flags.stderr)")
        #expect(flags.stderr.contains("keys from --access-key/--secret-key"), "\(flags.stderr)")
        #expect(Self.keys(proxy) == ["AKFLAG"])

        var seen = proxy.requests.count
        let env = try await Self.list(proxy, dir, environment: environment)
        #expect(env.status == 0, "\(env.stderr)")
        #expect(env.stderr.contains("keys from environment (AWS_ACCESS_KEY_ID)"), "\(env.stderr)")
        #expect(Self.keys(proxy, from: seen) == ["AKENVIRONMENT"])

        seen = proxy.requests.count
        let profile = try await Self.list(proxy, dir, environment: ["AWS_PROFILE": "backup", "AWS_SHARED_CREDENTIALS_FILE": dir.file("credentials")])
        #expect(profile.status == 0, "\(profile.stderr)")
        #expect(profile.stderr.contains("keys from profile backup (\(dir.file("credentials")))"), "\(profile.stderr)")
        #expect(Self.keys(proxy, from: seen) == ["AKBACKUPPROFILE"])

        seen = proxy.requests.count
        let byDefault = try await Self.list(proxy, dir, environment: ["AWS_SHARED_CREDENTIALS_FILE": dir.file("credentials")])
        #expect(byDefault.status == 0, "\(byDefault.stderr)")
        #expect(Self.keys(proxy, from: seen) == ["AKDEFAULTPROFILE"])

        for result in [flags, env, profile, byDefault] {
          for secret in ["flag-secret", "env-secret", "backup-secret", "default-secret"] { #expect(!result.stderr.contains(secret)) }
        }
      }
    }

    @Test func webIdentityAssumesTheRoleAtSTS() async throws {
      try await Self.withSetup { moto, proxy, dir in
        try "eyJhbGciOiJSUzI1NiJ9.service-account-token.sig\n".write(toFile: dir.file("token"), atomically: true, encoding: .utf8)
        let environment = [
          "AWS_ROLE_ARN": "arn:aws:iam::123456789012:role/etcd-backup", "AWS_WEB_IDENTITY_TOKEN_FILE": dir.file("token"),
          "AWS_ENDPOINT_URL_STS": moto.endpoint, "AWS_ROLE_SESSION_NAME": "lifeboat-test",
          // Web identity comes before profiles: this one must not be used.
          "AWS_PROFILE": "", "AWS_SHARED_CREDENTIALS_FILE": dir.file("credentials"),
        ]
        try "[default]\naws_access_key_id = AKPROFILE\naws_secret_access_key = s\n".write(
          toFile: dir.file("credentials"), atomically: true, encoding: .utf8)
        let list = try await Self.list(proxy, dir, environment: environment)
        #expect(list.status == 0, "\(list.stderr)")
        #expect(list.stderr.contains("keys from web identity (STS AssumeRoleWithWebIdentity, role arn:aws:iam::123456789012:role/etcd-backup)"), "\(list.stderr)")
        let requests = proxy.requests
        #expect(!requests.isEmpty)
        #expect(requests.allSatisfy { $0.accessKey?.hasPrefix("ASIA") == true && $0.hasSessionToken }, "temporary keys from STS, with their token")
        #expect(moto.requestLog.contains("POST / HTTP"), "STS was asked")
        #expect(!list.stderr.contains("service-account-token"))

        try FileManager.default.removeItem(atPath: dir.file("token"))
        let missing = try await Self.list(proxy, dir, environment: environment)
        #expect(missing.status == 2, "\(missing.stderr)")
        #expect(missing.stderr.contains("web identity token file \(dir.file("token")) does not exist"), "\(missing.stderr)")
        #expect(Self.afterTheSourceLine(missing.stderr).count == 1, "one line: \(missing.stderr)")
      }
    }

    @Test func theContainerEndpointThenTheInstanceRole() async throws {
      try await Self.withSetup { moto, proxy, dir in
        // moto's IMDS answers the credentials document the container endpoint answers.
        let container = try await Self.list(proxy, dir, environment: [
          "AWS_CONTAINER_CREDENTIALS_FULL_URI": moto.endpoint + "/latest/meta-data/iam/security-credentials/default-role",
          "AWS_CONTAINER_AUTHORIZATION_TOKEN": "container-auth-token", "AWS_EC2_METADATA_SERVICE_ENDPOINT": "http://127.0.0.1:9",
        ])
        #expect(container.status == 0, "\(container.stderr)")
        #expect(container.stderr.contains("keys from container credentials (\(moto.endpoint)/latest/meta-data"), "\(container.stderr)")
        #expect(Self.keys(proxy) == ["test-key"], "moto's keys")
        #expect(proxy.requests.allSatisfy { $0.hasSessionToken })
        #expect(!container.stderr.contains("container-auth-token"))

        let seen = proxy.requests.count
        let instance = try await Self.list(proxy, dir, environment: [
          "AWS_EC2_METADATA_DISABLED": "", "AWS_EC2_METADATA_SERVICE_ENDPOINT": moto.endpoint,
        ])
        #expect(instance.status == 0, "\(instance.stderr)")
        #expect(instance.stderr.contains("keys from instance role (IMDSv2 at \(moto.endpoint))"), "\(instance.stderr)")
        #expect(Self.keys(proxy, from: seen) == ["test-key"])
        let log = moto.requestLog
        #expect(log.contains("PUT /latest/api/token"), "IMDSv2: a session token first")
        #expect(log.contains("GET /latest/meta-data/iam/security-credentials/default-role"))

        // No instance metadata service: one line, naming where it was looked for.
        let port = try freeTCPPort(on: "127.0.0.1")
        let none = try await Self.list(proxy, dir, environment: [
          "AWS_EC2_METADATA_DISABLED": "", "AWS_EC2_METADATA_SERVICE_ENDPOINT": "http://127.0.0.1:\(port)",
        ])
        #expect(none.status == 6, "\(none.stderr)")
        #expect(none.stderr.contains("no S3 credentials"), "\(none.stderr)")
        #expect(none.stderr.contains("127.0.0.1:\(port)"), "\(none.stderr)")
        #expect(Self.afterTheSourceLine(none.stderr).count == 1, "one line: \(none.stderr)")
      }
    }

    /// Keys from STS that live 4 seconds, during an upload that takes longer: every part is signed
    /// with keys fetched less than half their lifetime earlier.
    @Test func temporaryKeysAreRefreshedDuringALongUpload() async throws {
      try await Self.withSetup { moto, proxy, dir in
        try "token".write(toFile: dir.file("token"), atomically: true, encoding: .utf8)
        try """
          [profile short]
          role_arn = arn:aws:iam::123456789012:role/etcd-backup
          web_identity_token_file = \(dir.file("token"))
          duration_seconds = 4
          """.write(toFile: dir.file("config"), atomically: true, encoding: .utf8)
        let provider = try CredentialChain.resolve(
          given: .init(accessKey: nil, secretKey: nil, source: .flags, names: "flags"),
          environment: Self.clean.merging([
            "HOME": dir.path, "AWS_CONFIG_FILE": dir.file("config"), "AWS_PROFILE": "short", "AWS_ENDPOINT_URL_STS": moto.endpoint,
          ]) { $1 }, region: "")
        var configuration = try moto.configuration(bucket: "snaps")
        configuration.endpoint = try S3Endpoint(parsing: proxy.endpoint, allowInsecureHTTP: true)
        configuration.credentials = provider
        let part = [UInt8](repeating: 0x5A, count: 5 << 20)
        try await S3Store.with(configuration) { store in
          let writer = try await store.makeWriter(for: "long.zip", contentType: "application/zip")
          for _ in 0..<4 {
            try await writer.write(part)
            try await Task.sleep(for: .milliseconds(2500))
          }
          let stored = try await writer.finish()
          #expect(stored.size == UInt64(4 * part.count))
        }
        let refreshes = try #require(provider as? RefreshingCredentials)
        #expect(await refreshes.fetches >= 3, "keys fetched again while the upload ran")
        let partKeys = Set(proxy.requests.filter(\.isPartUpload).compactMap(\.accessKey))
        #expect(partKeys.count >= 3, "the parts of one upload were signed with successive keys: \(partKeys)")
        #expect(proxy.requests.allSatisfy { $0.accessKey?.hasPrefix("ASIA") == true })
      }
    }
  }
}
