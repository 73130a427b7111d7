import Crypto
import Foundation
import LifeboatCore
import LifeboatEngine
import SnapshotStores
import TestSupport
import Testing

/// The credential chain's order and its refusals, from environments and files written here (the
/// sources that need a server are in `Integration.CredentialSourceTests`, against moto).
@Suite struct CredentialChainTests {
  static let flags = CredentialChain.Given(accessKey: nil, secretKey: nil, source: .flags, names: "--access-key and --secret-key")
  /// No instance metadata (nothing on this machine may answer for it).
  static let base = ["HOME": "/nonexistent-lifeboat-home", "AWS_EC2_METADATA_DISABLED": "true"]

  func resolve(_ environment: [String: String], given: CredentialChain.Given = flags) throws -> any S3CredentialProvider {
    try CredentialChain.resolve(given: given, environment: Self.base.merging(environment) { $1 }, region: "")
  }

  func usageError(_ environment: [String: String], given: CredentialChain.Given = flags) -> String? {
    do {
      _ = try resolve(environment, given: given)
      return nil
    } catch let error as LifeboatError {
      #expect(error.kind == .usage, "\(error.message)")
      return error.message
    } catch {
      Issue.record("unexpected \(error)")
      return nil
    }
  }

  @Test func givenKeysComeFirst() async throws {
    let given = CredentialChain.Given(accessKey: "AKFLAG", secretKey: "flag-secret", source: .flags, names: "--access-key and --secret-key")
    let provider = try resolve(["AWS_ACCESS_KEY_ID": "AKENV", "AWS_SECRET_ACCESS_KEY": "env-secret"], given: given)
    #expect(provider.source == .flags)
    #expect(try await provider.credentials().accessKey == "AKFLAG")
  }

  @Test func theEnvironmentComesBeforeWebIdentityAndProfiles() async throws {
    try await withTemporaryDirectory { dir in
      try "[default]\naws_access_key_id = AKFILE\naws_secret_access_key = file-secret\n".write(
        toFile: dir.file("credentials"), atomically: true, encoding: .utf8)
      let provider = try resolve([
        "AWS_ACCESS_KEY_ID": "AKENV", "AWS_SECRET_ACCESS_KEY": "env-secret", "AWS_SESSION_TOKEN": "tok",
        "AWS_ROLE_ARN": "arn:aws:iam::123456789012:role/r", "AWS_WEB_IDENTITY_TOKEN_FILE": dir.file("token"),
        "AWS_SHARED_CREDENTIALS_FILE": dir.file("credentials"),
      ])
      #expect(provider.source == .environment)
    }
    let keys = try await resolve(["AWS_ACCESS_KEY_ID": "AKENV", "AWS_SECRET_ACCESS_KEY": "env-secret", "AWS_SESSION_TOKEN": "tok"])
      .credentials()
    #expect(keys.accessKey == "AKENV")
    #expect(keys.sessionToken?.value == "tok")
  }

  @Test func webIdentityComesBeforeProfiles() async throws {
    try await withTemporaryDirectory { dir in
      try "token".write(toFile: dir.file("token"), atomically: true, encoding: .utf8)
      try "[default]\naws_access_key_id = AKFILE\naws_secret_access_key = file-secret\n".write(
        toFile: dir.file("credentials"), atomically: true, encoding: .utf8)
      let provider = try resolve([
        "AWS_ROLE_ARN": "arn:aws:iam::123456789012:role/backup", "AWS_WEB_IDENTITY_TOKEN_FILE": dir.file("token"),
        "AWS_SHARED_CREDENTIALS_FILE": dir.file("credentials"),
      ])
      #expect(provider.source == .webIdentity(role: "arn:aws:iam::123456789012:role/backup"))
    }
  }

  @Test func profilesFromTheCredentialsAndConfigFiles() async throws {
    try await withTemporaryDirectory { dir in
      try """
        # comment
        [default]
        aws_access_key_id = AKDEFAULT
        aws_secret_access_key = default-secret

        [backup]
        aws_access_key_id=AKBACKUP   ; trailing comment
        aws_secret_access_key = backup/secret+x
        """.write(toFile: dir.file("credentials"), atomically: true, encoding: .utf8)
      try """
        [profile configured]
        region = eu-west-1
        aws_access_key_id = AKCONFIG
        aws_secret_access_key = config-secret
        s3 =
          max_concurrent_requests = 4
        """.write(toFile: dir.file("config"), atomically: true, encoding: .utf8)
      let files = ["AWS_SHARED_CREDENTIALS_FILE": dir.file("credentials"), "AWS_CONFIG_FILE": dir.file("config")]
      let byDefault = try resolve(files)
      #expect(byDefault.source == .profile(name: "default", file: dir.file("credentials")))
      #expect(try await byDefault.credentials().accessKey == "AKDEFAULT")
      let backup = try await resolve(files.merging(["AWS_PROFILE": "backup"]) { $1 }).credentials()
      #expect(backup.accessKey == "AKBACKUP")
      #expect(backup.secretKey.value == "backup/secret+x")
      let configured = try resolve(files.merging(["AWS_PROFILE": "configured"]) { $1 })
      #expect(configured.source == .profile(name: "configured", file: dir.file("config")))
      #expect(try await configured.credentials().accessKey == "AKCONFIG")
      let message = usageError(files.merging(["AWS_PROFILE": "missing"]) { $1 })
      #expect(message?.contains("AWS_PROFILE missing is neither in") == true, "\(message ?? "")")
    }
  }

  @Test func aProfileWithARoleAndATokenFileIsWebIdentity() async throws {
    try await withTemporaryDirectory { dir in
      try "token".write(toFile: dir.file("token"), atomically: true, encoding: .utf8)
      try "[profile irsa]\nrole_arn = arn:aws:iam::1:role/snap\nweb_identity_token_file = \(dir.file("token"))\nduration_seconds = 900\n".write(
        toFile: dir.file("config"), atomically: true, encoding: .utf8)
      let provider = try resolve(["AWS_CONFIG_FILE": dir.file("config"), "AWS_PROFILE": "irsa"])
      #expect(provider.source == .webIdentity(role: "arn:aws:iam::1:role/snap"))
    }
  }

  @Test func profilesThatNeedAnotherToolAreRefusedByName() async throws {
    try await withTemporaryDirectory { dir in
      try "[profile sso]\nsso_session = corp\n[profile proc]\ncredential_process = /usr/bin/get-keys\n".write(
        toFile: dir.file("config"), atomically: true, encoding: .utf8)
      for (profile, setting) in [("sso", "sso_session"), ("proc", "credential_process")] {
        let message = usageError(["AWS_CONFIG_FILE": dir.file("config"), "AWS_PROFILE": profile])
        #expect(message?.contains("uses \(setting)") == true, "\(message ?? "")")
      }
    }
  }

  @Test func halfSetSourcesAreUsageErrors() {
    #expect(usageError(["AWS_ACCESS_KEY_ID": "AK"])?.contains("only one of AWS_ACCESS_KEY_ID") == true)
    #expect(usageError(["AWS_ROLE_ARN": "arn:aws:iam::1:role/r"])?.contains("AWS_WEB_IDENTITY_TOKEN_FILE") == true)
    #expect(usageError(["AWS_ROLE_ARN": "arn:aws:iam::1:role/r", "AWS_WEB_IDENTITY_TOKEN_FILE": "/nonexistent/token"])?
      .contains("the web identity token file /nonexistent/token does not exist") == true)
    let half = CredentialChain.Given(accessKey: "AK", secretKey: nil, source: .flags, names: "--access-key and --secret-key")
    #expect(usageError([:], given: half)?.contains("both an access key and a secret key") == true)
    #expect(usageError(["AWS_CONTAINER_CREDENTIALS_FULL_URI": "http://10.0.0.5/creds"])?.contains("loopback") == true)
    #expect(usageError(["AWS_ENDPOINT_URL_STS": "ftp://sts", "AWS_ROLE_ARN": "r", "AWS_WEB_IDENTITY_TOKEN_FILE": "/t"])?
      .contains("not an http(s) URL") == true)
  }

  @Test func nothingAtAllIsAUsageErrorNamingEverySource() {
    let message = usageError([:])
    #expect(message?.contains("no S3 credentials") == true)
    #expect(message?.contains("AWS_PROFILE") == true)
  }

  @Test func theContainerEndpointAndTheInstanceRoleAreTheLastSources() throws {
    let container = try resolve(["AWS_CONTAINER_CREDENTIALS_RELATIVE_URI": "/v2/credentials/abc"])
    #expect(container.source == .container("http://169.254.170.2/v2/credentials/abc"))
    let instance = try CredentialChain.resolve(
      given: Self.flags, environment: ["HOME": "/nonexistent-lifeboat-home", "AWS_EC2_METADATA_SERVICE_ENDPOINT": "http://127.0.0.1:9/"],
      region: "")
    #expect(instance.source == .instanceRole(endpoint: "http://127.0.0.1:9"))
  }

  @Test func anUnreachableInstanceRoleIsOneLineNamingTheEndpoint() async throws {
    let port = try freeTCPPort(on: "127.0.0.1")
    let instance = try CredentialChain.resolve(
      given: Self.flags, environment: ["HOME": "/nonexistent-lifeboat-home", "AWS_EC2_METADATA_SERVICE_ENDPOINT": "http://127.0.0.1:\(port)"],
      region: "")
    do {
      _ = try await instance.credentials()
      Issue.record("no credentials expected")
    } catch {
      #expect(error.message.contains("no S3 credentials"))
      #expect(error.message.contains("127.0.0.1:\(port)"))
      #expect(!error.message.contains("\n"))
    }
  }

  @Test func sourcesNeverPrintKeys() throws {
    let given = CredentialChain.Given(accessKey: "AKIAFLAG", secretKey: "wJalrXUtnFEMI-secret", source: .flags, names: "flags")
    let provider = try resolve([:], given: given)
    #expect(!"\(provider)".contains("wJalrXUtnFEMI"))
    #expect(!"\(provider.source)".contains("AKIAFLAG"))
  }
}

/// Refreshing temporary credentials: early, once for concurrent callers, never handing out
/// expired keys.
@Suite struct RefreshingCredentialsTests {
  final class Clock: @unchecked Sendable {
    private let lock = NSLock()
    private var value = Date(timeIntervalSince1970: 1_800_000_000)
    var now: Date { lock.withLock { value } }
    func advance(_ seconds: TimeInterval) { lock.withLock { value += seconds } }
  }

  actor Issuer {
    var issued = 0
    var failing = false
    func setFailing(_ value: Bool) { failing = value }
    func issue(now: Date, lifetime: TimeInterval) throws(LifeboatError) -> IssuedCredentials {
      if failing { throw .storage("STS is down") }
      issued += 1
      return IssuedCredentials(
        keys: S3Credentials(accessKey: "ASIA\(issued)", secretKey: Secret("s\(issued)"), sessionToken: Secret("t\(issued)")),
        expiration: now + lifetime)
    }
  }

  func provider(_ clock: Clock, _ issuer: Issuer, lifetime: TimeInterval) -> RefreshingCredentials {
    RefreshingCredentials(source: .webIdentity(role: "r"), now: { clock.now }) { () async throws(LifeboatError) in
      try await issuer.issue(now: clock.now, lifetime: lifetime)
    }
  }

  @Test func hourLongKeysRefreshFiveMinutesEarly() async throws {
    let clock = Clock()
    let issuer = Issuer()
    let provider = provider(clock, issuer, lifetime: 3600)
    #expect(try await provider.credentials().accessKey == "ASIA1")
    clock.advance(3600 - 301)
    #expect(try await provider.credentials().accessKey == "ASIA1")
    clock.advance(2)
    #expect(try await provider.credentials().accessKey == "ASIA2")
    #expect(await provider.fetches == 2)
  }

  @Test func shortLivedKeysRefreshAtHalfTheirLifetime() async throws {
    let clock = Clock()
    let issuer = Issuer()
    let provider = provider(clock, issuer, lifetime: 10)
    #expect(try await provider.credentials().accessKey == "ASIA1")
    clock.advance(4.9)
    #expect(try await provider.credentials().accessKey == "ASIA1")
    clock.advance(0.2)
    #expect(try await provider.credentials().accessKey == "ASIA2")
  }

  @Test func concurrentCallersShareOneFetch() async throws {
    let clock = Clock()
    let issuer = Issuer()
    let provider = provider(clock, issuer, lifetime: 3600)
    try await withThrowingTaskGroup(of: String.self) { group in
      for _ in 0..<20 { group.addTask { try await provider.credentials().accessKey } }
      for try await key in group { #expect(key == "ASIA1") }
    }
    #expect(await issuer.issued == 1)
  }

  @Test func aFailedRefreshKeepsValidKeysButNeverExpiredOnes() async throws {
    let clock = Clock()
    let issuer = Issuer()
    let provider = provider(clock, issuer, lifetime: 3600)
    _ = try await provider.credentials()
    await issuer.setFailing(true)
    clock.advance(3600 - 60)
    #expect(try await provider.credentials().accessKey == "ASIA1", "still valid for a minute: used, with a warning")
    clock.advance(55)
    await #expect(throws: LifeboatError.self) { try await provider.credentials() }
    await issuer.setFailing(false)
    #expect(try await provider.credentials().accessKey == "ASIA2")
  }
}

/// Proxy settings: the flag, the environment, NO_PROXY.
@Suite struct S3ProxyTests {
  let https = S3Endpoint(secure: true, host: "s3.eu-west-1.amazonaws.com")
  let plain = S3Endpoint(secure: false, host: "127.0.0.1", port: 9000)

  @Test func theEnvironmentPicksTheSchemesVariable() throws {
    let environment = ["HTTPS_PROXY": "http://proxy.corp:3128", "http_proxy": "http://plain.corp:8080"]
    #expect(try S3Proxy.resolve(setting: nil, endpoint: https, environment: environment)?.description == "http://proxy.corp:3128")
    #expect(try S3Proxy.resolve(setting: nil, endpoint: https, environment: environment)?.origin == "HTTPS_PROXY")
    #expect(try S3Proxy.resolve(setting: nil, endpoint: plain, environment: environment)?.description == "http://plain.corp:8080")
    #expect(try S3Proxy.resolve(setting: nil, endpoint: https, environment: [:]) == nil)
  }

  @Test func noneIgnoresTheEnvironmentAndAFlagWins() throws {
    let environment = ["HTTPS_PROXY": "http://proxy.corp:3128"]
    #expect(try S3Proxy.resolve(setting: "none", endpoint: https, environment: environment) == nil)
    let flag = try S3Proxy.resolve(setting: "http://user:p%40ss@10.1.2.3:8888", endpoint: https, environment: environment)
    #expect(flag?.host == "10.1.2.3")
    #expect(flag?.port == 8888)
    #expect(flag?.user == "user")
    #expect(flag?.password?.value == "p@ss")
    #expect(flag?.description == "http://10.1.2.3:8888", "no password in messages")
  }

  @Test(arguments: [
    ("*", true), ("amazonaws.com", true), (".amazonaws.com", true), ("*.amazonaws.com", true),
    ("s3.eu-west-1.amazonaws.com:443", true), ("other.com,amazonaws.com", true), ("mazonaws.com", false), ("other.com", false), ("", false),
  ])
  func noProxyMatchesNamesAndSuffixes(noProxy: String, bypassed: Bool) {
    #expect(S3Proxy.bypasses(host: "s3.eu-west-1.amazonaws.com", noProxy: noProxy) == bypassed)
  }

  @Test func noProxyMatchesAddressesAndBlocks() {
    #expect(S3Proxy.bypasses(host: "127.0.0.1", noProxy: "localhost,127.0.0.1"))
    #expect(S3Proxy.bypasses(host: "10.4.5.6", noProxy: "10.0.0.0/8"))
    #expect(!S3Proxy.bypasses(host: "11.4.5.6", noProxy: "10.0.0.0/8"))
    #expect(S3Proxy.bypasses(host: "::1", noProxy: "[::1]"))
  }

  @Test(arguments: ["https://proxy:3128", "socks5://proxy:1080", "http://proxy:99999", "http://", "http://u:p@proxy:3128/path?x"])
  func badProxiesAreUsageErrors(url: String) {
    do {
      _ = try S3Proxy(parsing: url, origin: "--s3-proxy")
      Issue.record("\(url) accepted")
    } catch {
      #expect(error.kind == .usage)
      #expect(error.message.hasPrefix("--s3-proxy"))
    }
  }

  @Test func aPasswordNeverReachesAnError() {
    do {
      _ = try S3Proxy(parsing: "https://user:hunter2@proxy:3128", origin: "HTTPS_PROXY")
    } catch {
      #expect(!error.message.contains("hunter2"))
    }
  }
}

/// What S3 answers about SSE-C, in one line that names the fix (S3's documented errors; moto
/// does not implement SSE-C).
@Suite struct ServerSideEncryptionErrorTests {
  struct Canned: S3Transport {
    var status: Int
    var body: String
    func send(_ request: S3HTTPRequest) async throws(S3TransportFailure) -> S3HTTPResponse {
      S3HTTPResponse(status: status, headers: [], body: Array(body.utf8))
    }
    func stream(_ request: S3HTTPRequest, _ body: ([UInt8]) async throws(LifeboatError) -> Void) async throws -> S3HTTPResponse {
      S3HTTPResponse(status: status, headers: [], body: Array(self.body.utf8))
    }
  }

  func message(status: Int, code: String, text: String, sse: S3ServerSideEncryption?) async -> String {
    var configuration = S3Configuration(
      endpoint: S3Endpoint(secure: true, host: "s3.example"), bucket: "snaps",
      credentials: S3Credentials(accessKey: "a", secretKey: Secret("b")))
    configuration.serverSideEncryption = sse
    let store = S3Store(
      configuration: configuration, transport: Canned(status: status, body: "<Error><Code>\(code)</Code><Message>\(text)</Message></Error>"),
      logger: .init(label: "test"))
    do {
      try await store.read("x.zip", range: nil) { (_) async throws(LifeboatError) in }
      return ""
    } catch {
      return error.message
    }
  }

  @Test func withoutTheKeyAndWithTheWrongKey() async throws {
    let missing = await message(
      status: 400, code: "InvalidRequest",
      text: "The object was stored using a form of Server Side Encryption. The correct parameters must be provided to retrieve the object.",
      sse: nil)
    #expect(missing.contains("x.zip is encrypted with a customer key (SSE-C): give --s3-sse-customer-key-file"), "\(missing)")
    try await withTemporaryDirectory { dir in
      try Data(repeating: 7, count: 32).write(to: URL(fileURLWithPath: dir.file("k")))
      let wrong = await message(
        status: 403, code: "AccessDenied", text: "The calculated MD5 hash of the key did not match the hash that was provided.",
        sse: try S3ServerSideEncryption(customerKeyFile: dir.file("k")))
      #expect(wrong.contains("the SSE-C key (--s3-sse-customer-key-file) is not the one x.zip was written with"), "\(wrong)")
      #expect(!wrong.contains(Data(repeating: 7, count: 32).base64EncodedString()))
    }
  }
}

/// Which payloads are signed with their SHA-256 and which with UNSIGNED-PAYLOAD.
@Suite struct PayloadSigningTests {
  final class Recorder: S3Transport, @unchecked Sendable {
    var seen: [S3HTTPRequest] = []
    func send(_ request: S3HTTPRequest) async throws(S3TransportFailure) -> S3HTTPResponse {
      seen.append(request)
      return S3HTTPResponse(status: 200, headers: [])
    }
    func stream(_ request: S3HTTPRequest, _ body: ([UInt8]) async throws(LifeboatError) -> Void) async throws -> S3HTTPResponse {
      seen.append(request)
      return S3HTTPResponse(status: 200, headers: [])
    }
  }

  @Test(arguments: [(true, true, "UNSIGNED-PAYLOAD"), (true, false, "sha"), (false, true, "sha"), (false, false, "sha")])
  func unsignedOnlyOverHTTPSWithAChecksum(secure: Bool, checksummed: Bool, expected: String) async throws {
    let recorder = Recorder()
    let signing = SigningTransport(
      base: recorder, credentials: S3Credentials(accessKey: "a", secretKey: Secret("b")), region: "us-east-1",
      unsignedChecksummedPayloads: secure)
    let body = Array("part".utf8)
    let headers = checksummed ? [("x-amz-checksum-crc32c", "AAAAAA==")] : []
    _ = try await signing.send(S3HTTPRequest(method: "PUT", host: "h", path: "/b/k", headers: headers, body: body, operation: "t"))
    let sent = try #require(recorder.seen.first?.headers.first { $0.0 == "x-amz-content-sha256" }?.1)
    #expect(sent == (expected == "sha" ? SHA256Hex.of(body) : expected))
  }
}

enum SHA256Hex {
  static func of(_ bytes: [UInt8]) -> String {
    SHA256.hash(data: bytes).map { String(format: "%02x", $0) }.joined()
  }
}

/// Object Lock settings: mode and days, or "until retention would prune it".
@Suite struct ObjectLockSettingsTests {
  @Test func daysOrUntilPruned() throws {
    #expect(try S3ObjectLock.resolve(mode: "GOVERNANCE", days: "30", pruneAge: nil) == S3ObjectLock(mode: .governance, retention: 30 * 86400))
    #expect(try S3ObjectLock.resolve(mode: "compliance", days: "prune", pruneAge: 72 * 3600) == S3ObjectLock(mode: .compliance, retention: 72 * 3600))
    #expect(try S3ObjectLock.resolve(mode: nil, days: nil, pruneAge: nil) == nil)
  }

  @Test(arguments: [
    ("GOVERNANCE", nil as String?, "needs --s3-object-lock-days"), ("LEGAL", "3", "expected GOVERNANCE or COMPLIANCE"),
    ("GOVERNANCE", "0", "from 1 to 36500"), ("GOVERNANCE", "prune", "age-based retention"),
  ])
  func refusals(mode: String, days: String?, message: String) {
    do {
      _ = try S3ObjectLock.resolve(mode: mode, days: days, pruneAge: nil)
      Issue.record("accepted")
    } catch {
      #expect(error.kind == .usage)
      #expect(error.message.contains(message), "\(error.message)")
    }
  }

  @Test func lockStateHoldsUntilItsDateOrUnderLegalHold() {
    let now = Date(timeIntervalSince1970: 1_800_000_000)
    #expect(ObjectLockState(mode: "GOVERNANCE", retainUntil: now + 1, legalHold: false).holds(at: now))
    #expect(!ObjectLockState(mode: "GOVERNANCE", retainUntil: now - 1, legalHold: false).holds(at: now))
    #expect(ObjectLockState(mode: nil, retainUntil: nil, legalHold: true).holds(at: now))
  }
}

/// A plain and an encrypted archive under one name: a problem every reader names, and `delete`
/// removes both.
@Suite struct TwinArchiveTests {
  @Test func bothCopiesAreAProblemAndDeleteRemovesBoth() async throws {
    try await withTemporaryDirectory { dir in
      let store = LocalStore(directory: dir.path)
      _ = try await store.put("x.zip", Array("plain".utf8), contentType: ContentType.zip)
      _ = try await store.put("x.zip.age", Array("sealed".utf8), contentType: ContentType.age)
      let catalog = SnapshotCatalog(store: store)
      let listed = try await catalog.list()
      #expect(listed.count == 1)
      #expect(listed.first?.manifestProblem?.contains("holds both x.zip and x.zip.age") == true)
      let found = try await catalog.find(try SnapshotName("x"))
      #expect(found.manifestProblem?.contains("holds both") == true)
      let deleted = try await catalog.delete(found)
      #expect(deleted.count == 2)
      #expect(try await store.list().isEmpty)
    }
  }
}
