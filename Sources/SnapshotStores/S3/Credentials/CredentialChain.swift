import Foundation
import LifeboatCore
import Logging

/// Finds the S3 keys the way the AWS SDKs do, first match wins:
/// 1. keys given to Lifeboat (`--access-key`/`--secret-key`, or cluster.yml's `s3backupconfig`);
/// 2. the environment: `AWS_ACCESS_KEY_ID` + `AWS_SECRET_ACCESS_KEY` (+ `AWS_SESSION_TOKEN`);
/// 3. web identity: `AWS_ROLE_ARN` + `AWS_WEB_IDENTITY_TOKEN_FILE` → STS AssumeRoleWithWebIdentity
///    (`AWS_ROLE_SESSION_NAME`; endpoint `AWS_ENDPOINT_URL_STS`, else `AWS_ENDPOINT_URL`, else STS
///    of the region);
/// 4. the shared files: profile `AWS_PROFILE` (default `default`) of `AWS_SHARED_CREDENTIALS_FILE`
///    (`~/.aws/credentials`) and `AWS_CONFIG_FILE` (`~/.aws/config`): static keys, or
///    `role_arn` + `web_identity_token_file` (with `role_session_name`, `duration_seconds`);
/// 5. the container endpoint: `AWS_CONTAINER_CREDENTIALS_FULL_URI` or `..._RELATIVE_URI`;
/// 6. the instance role through IMDSv2 (`AWS_EC2_METADATA_SERVICE_ENDPOINT`), unless
///    `AWS_EC2_METADATA_DISABLED=true`.
/// Choosing reads only the environment and files; the endpoints are asked at the first request.
/// A source that is half set (a key without its secret, a profile that does not exist, a profile
/// that needs a tool Lifeboat does not run) is a usage error, never a silent fall-through.
public enum CredentialChain {
  public struct Given: Sendable {
    public var accessKey: String?
    public var secretKey: String?
    public var source: CredentialSource
    /// How to name the two settings in an error ("--access-key and --secret-key").
    public var names: String

    public init(accessKey: String?, secretKey: String?, source: CredentialSource, names: String) {
      self.accessKey = accessKey
      self.secretKey = secretKey
      self.source = source
      self.names = names
    }
  }

  public static func resolve(
    given: Given, environment: [String: String], region: String, proxySetting: String? = nil,
    refreshWindow: TimeInterval = 300, logger: Logger = Logger(label: "lifeboat.s3")
  ) throws(LifeboatError) -> any S3CredentialProvider {
    // 1. Given keys.
    let givenAccess = given.accessKey.flatMap { $0.isEmpty ? nil : $0 }
    let givenSecret = given.secretKey.flatMap { $0.isEmpty ? nil : $0 }
    if given.accessKey != nil || given.secretKey != nil {
      guard let givenAccess, let givenSecret else {
        throw .usage("S3 needs both an access key and a secret key (\(given.names))")
      }
      return StaticCredentials(
        S3Credentials(accessKey: givenAccess, secretKey: Secret(givenSecret), sessionToken: nil), source: given.source)
    }
    // 2. The environment.
    let envAccess = environment.nonEmpty("AWS_ACCESS_KEY_ID")
    let envSecret = environment.nonEmpty("AWS_SECRET_ACCESS_KEY")
    if envAccess != nil || envSecret != nil {
      guard let envAccess, let envSecret else {
        throw .usage("S3 needs both an access key and a secret key: only one of AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY is set")
      }
      return StaticCredentials(
        S3Credentials(accessKey: envAccess, secretKey: Secret(envSecret), sessionToken: environment.nonEmpty("AWS_SESSION_TOKEN").map(Secret.init)),
        source: .environment)
    }
    let sts = try stsHTTP(environment: environment, region: region, proxySetting: proxySetting)
    // 3. Web identity.
    let roleARN = environment.nonEmpty("AWS_ROLE_ARN")
    let tokenFile = environment.nonEmpty("AWS_WEB_IDENTITY_TOKEN_FILE")
    if roleARN != nil || tokenFile != nil {
      guard let roleARN, let tokenFile else {
        throw .usage("web identity needs both AWS_ROLE_ARN and AWS_WEB_IDENTITY_TOKEN_FILE (only one is set)")
      }
      return try webIdentity(
        roleARN: roleARN, tokenFile: tokenFile, sessionName: environment.nonEmpty("AWS_ROLE_SESSION_NAME"), sts: sts,
        refreshWindow: refreshWindow, logger: logger)
    }
    // 4. The shared files.
    if let profile = try SharedCredentialFiles(environment: environment).profile() {
      switch profile.kind {
      case .keys(let keys):
        return StaticCredentials(keys, source: .profile(name: profile.name, file: profile.file))
      case .webIdentity(let role, let tokenFile, let sessionName, let durationSeconds):
        return try webIdentity(
          roleARN: role, tokenFile: tokenFile, sessionName: sessionName, durationSeconds: durationSeconds, sts: sts,
          refreshWindow: refreshWindow, logger: logger)
      }
    }
    // 5. The container endpoint.
    let local = CredentialHTTP(connectTimeout: .seconds(2), deadline: .seconds(5))
    if let full = environment.nonEmpty("AWS_CONTAINER_CREDENTIALS_FULL_URI") ?? environment.nonEmpty("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI").map({
      "http://169.254.170.2" + ($0.hasPrefix("/") ? $0 : "/" + $0)
    }) {
      try ContainerCredentialsFetcher.check(fullURI: full)
      let fetcher = ContainerCredentialsFetcher(
        url: full, token: environment.nonEmpty("AWS_CONTAINER_AUTHORIZATION_TOKEN"), tokenFile: environment.nonEmpty("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"),
        http: local)
      return RefreshingCredentials(
        source: .container(full), refreshWindow: refreshWindow, logger: logger,
        fetch: { () async throws(LifeboatError) in try await fetcher.fetch() })
    }
    // 6. The instance role.
    guard environment.nonEmpty("AWS_EC2_METADATA_DISABLED")?.lowercased() != "true" else {
      throw .usage(
        "no S3 credentials: none given (\(given.names)), none in the environment (AWS_ACCESS_KEY_ID, AWS_ROLE_ARN, AWS_PROFILE, AWS_CONTAINER_CREDENTIALS_FULL_URI) or ~/.aws, and AWS_EC2_METADATA_DISABLED=true")
    }
    let endpoint = environment.nonEmpty("AWS_EC2_METADATA_SERVICE_ENDPOINT") ?? "http://169.254.169.254"
    let imds = InstanceRoleFetcher(endpoint: endpoint, http: CredentialHTTP(connectTimeout: .seconds(1), deadline: .seconds(5)))
    let names = given.names
    return RefreshingCredentials(
      source: .instanceRole(endpoint: imds.endpoint), refreshWindow: refreshWindow, logger: logger,
      fetch: { () async throws(LifeboatError) in
        do throws(LifeboatError) { return try await imds.fetch() } catch {
          throw .storage(
            "no S3 credentials: none given (\(names)), none in the environment or ~/.aws, and the instance role failed: \(error.message)")
        }
      })
  }

  static func webIdentity(
    roleARN: String, tokenFile: String, sessionName: String?, durationSeconds: Int? = nil,
    sts: (endpoint: String, http: CredentialHTTP),
    refreshWindow: TimeInterval, logger: Logger
  ) throws(LifeboatError) -> any S3CredentialProvider {
    // Checked now, so a wrong path is a usage error before any request (it is read again at
    // every refresh: the kubelet rotates it).
    guard FileManager.default.isReadableFile(atPath: tokenFile) else {
      throw .usage("the web identity token file \(tokenFile) does not exist or cannot be read (AWS_WEB_IDENTITY_TOKEN_FILE or the profile's web_identity_token_file)")
    }
    let fetcher = WebIdentityFetcher(
      roleARN: roleARN, tokenFile: tokenFile,
      sessionName: sessionName ?? "lifeboat-\(Int(Date().timeIntervalSince1970))", endpoint: sts.endpoint, http: sts.http,
      durationSeconds: durationSeconds)
    return RefreshingCredentials(
      source: .webIdentity(role: roleARN), refreshWindow: refreshWindow, logger: logger,
      fetch: { () async throws(LifeboatError) in try await fetcher.fetch() })
  }

  /// STS's endpoint and client: `AWS_ENDPOINT_URL_STS`, `AWS_ENDPOINT_URL`, else regional STS;
  /// through the S3 proxy setting (or the environment's proxy for that host); `AWS_CA_BUNDLE` trusted.
  static func stsHTTP(environment: [String: String], region: String, proxySetting: String?) throws(LifeboatError)
    -> (endpoint: String, http: CredentialHTTP)
  {
    let region = environment.nonEmpty("AWS_REGION") ?? environment.nonEmpty("AWS_DEFAULT_REGION") ?? (region.isEmpty ? nil : region)
    var endpoint = environment.nonEmpty("AWS_ENDPOINT_URL_STS") ?? environment.nonEmpty("AWS_ENDPOINT_URL") ?? (region.map { "https://sts.\($0).amazonaws.com" } ?? "https://sts.amazonaws.com")
    while endpoint.hasSuffix("/") { endpoint.removeLast() }
    guard let url = URL(string: endpoint), let scheme = url.scheme?.lowercased(), ["http", "https"].contains(scheme), let host = url.host
    else {
      throw .usage("the STS endpoint \(endpoint) is not an http(s) URL (AWS_ENDPOINT_URL_STS)")
    }
    var customCA: [UInt8]?
    if let bundle = environment.nonEmpty("AWS_CA_BUNDLE") {
      guard let data = FileManager.default.contents(atPath: bundle) else { throw .usage("AWS_CA_BUNDLE \(bundle) cannot be read") }
      customCA = [UInt8](data)
    }
    let proxy: S3Proxy?
    if let proxySetting {
      proxy = proxySetting.lowercased() == "none" ? nil : try S3Proxy(parsing: proxySetting, origin: "--s3-proxy")
    } else {
      proxy = try S3Proxy.fromEnvironment(host: host, secure: scheme == "https", environment: environment)
    }
    return (endpoint + "/", CredentialHTTP(proxy: proxy, customCA: customCA))
  }
}

/// The AWS shared credentials and config files (INI), as the SDKs read them.
struct SharedCredentialFiles {
  var credentialsFile: String
  var configFile: String
  var profileName: String
  /// Whether the profile was named (`AWS_PROFILE`): then it must exist.
  var named: Bool

  struct Profile {
    enum Kind {
      case keys(S3Credentials)
      case webIdentity(role: String, tokenFile: String, sessionName: String?, durationSeconds: Int?)
    }
    var name: String
    var file: String
    var kind: Kind
  }

  init(environment: [String: String]) {
    let home = environment.nonEmpty("HOME") ?? NSHomeDirectory()
    credentialsFile = environment.nonEmpty("AWS_SHARED_CREDENTIALS_FILE") ?? home + "/.aws/credentials"
    configFile = environment.nonEmpty("AWS_CONFIG_FILE") ?? home + "/.aws/config"
    profileName = environment.nonEmpty("AWS_PROFILE") ?? environment.nonEmpty("AWS_DEFAULT_PROFILE") ?? "default"
    named = environment.nonEmpty("AWS_PROFILE") != nil || environment.nonEmpty("AWS_DEFAULT_PROFILE") != nil
  }

  /// The profile, nil when neither file has it and it was not named.
  func profile() throws(LifeboatError) -> Profile? {
    let credentials = Self.read(credentialsFile).flatMap { Self.parse($0)[profileName] }
    let configSection = profileName == "default" ? "default" : "profile \(profileName)"
    let config = Self.read(configFile).flatMap { Self.parse($0)[configSection] ?? Self.parse($0)[profileName] }
    guard credentials != nil || config != nil else {
      if named {
        throw .usage("AWS_PROFILE \(profileName) is neither in \(credentialsFile) nor in \(configFile)")
      }
      return nil
    }
    // The credentials file wins for keys it sets.
    let merged = (config ?? [:]).merging(credentials ?? [:]) { _, fromCredentials in fromCredentials }
    let file = credentials?["aws_access_key_id"] != nil ? credentialsFile : configFile
    let access = merged["aws_access_key_id"]
    let secret = merged["aws_secret_access_key"]
    if access != nil || secret != nil {
      guard let access, let secret, !access.isEmpty, !secret.isEmpty else {
        throw .usage("profile \(profileName) in \(file) needs both aws_access_key_id and aws_secret_access_key")
      }
      let token = merged["aws_session_token"].flatMap { $0.isEmpty ? nil : Secret($0) }
      return Profile(
        name: profileName, file: file,
        kind: .keys(S3Credentials(accessKey: access, secretKey: Secret(secret), sessionToken: token)))
    }
    if let role = merged["role_arn"], let tokenFile = merged["web_identity_token_file"] {
      var duration: Int?
      if let text = merged["duration_seconds"] {
        guard let seconds = Int(text), seconds > 0 else {
          throw .usage("profile \(profileName) in \(configFile): duration_seconds must be a number of seconds")
        }
        duration = seconds
      }
      return Profile(
        name: profileName, file: configFile,
        kind: .webIdentity(role: role, tokenFile: tokenFile, sessionName: merged["role_session_name"], durationSeconds: duration))
    }
    for unsupported in ["credential_process", "source_profile", "credential_source", "sso_session", "sso_start_url", "login_session"]
    where merged[unsupported] != nil {
      throw .usage(
        "profile \(profileName) uses \(unsupported), which Lifeboat does not run: give it keys, role_arn + web_identity_token_file, or export the keys (aws configure export-credentials)")
    }
    if named { throw .usage("profile \(profileName) has no credentials (aws_access_key_id/aws_secret_access_key)") }
    return nil
  }

  static func read(_ path: String) -> String? {
    FileManager.default.contents(atPath: path).map { String(decoding: $0, as: UTF8.self) }
  }

  /// Sections of an INI file: `[name]` headers, `key = value` lines (keys lowercased), `#` and
  /// `;` comments; indented lines continue a nested block (`s3 =` settings) and are skipped.
  static func parse(_ text: String) -> [String: [String: String]] {
    var sections: [String: [String: String]] = [:]
    var current: String?
    for raw in text.split(whereSeparator: \.isNewline) {
      if raw.first == " " || raw.first == "\t" { continue }
      let line = raw.trimmingCharacters(in: .whitespaces)
      if line.isEmpty || line.hasPrefix("#") || line.hasPrefix(";") { continue }
      if line.hasPrefix("["), line.hasSuffix("]") {
        let name = line.dropFirst().dropLast().split(separator: " ", omittingEmptySubsequences: true).joined(separator: " ")
        current = name
        sections[name, default: [:]] = sections[name] ?? [:]
        continue
      }
      guard let current, let equals = line.firstIndex(of: "=") else { continue }
      let key = line[..<equals].trimmingCharacters(in: .whitespaces).lowercased()
      var value = line[line.index(after: equals)...].trimmingCharacters(in: .whitespaces)
      if let comment = value.range(of: " #") ?? value.range(of: " ;") { value = value[..<comment.lowerBound].trimmingCharacters(in: .whitespaces) }
      sections[current]?[key] = value
    }
    return sections
  }
}

extension [String: String] {
  /// The variable's value, nil when unset or empty (the SDKs treat both alike).
  func nonEmpty(_ name: String) -> String? { self[name].flatMap { $0.isEmpty ? nil : $0 } }
}
