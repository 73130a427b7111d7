import AsyncHTTPClient
import Foundation
import LifeboatCore
import NIOCore
import NIOHTTP1
import NIOSSL
import XMLCoder

/// One small HTTP exchange with a credentials endpoint (STS, the container endpoint, IMDS): a
/// client of its own per call (credentials are fetched once an hour or so), with a short deadline.
public struct CredentialHTTP: Sendable {
  /// The proxy (STS only: IMDS and container endpoints are link-local or loopback).
  public var proxy: S3Proxy?
  /// PEM certificates to trust (`AWS_CA_BUNDLE`).
  public var customCA: [UInt8]?
  public var connectTimeout: Duration
  public var deadline: Duration

  public init(proxy: S3Proxy? = nil, customCA: [UInt8]? = nil, connectTimeout: Duration = .seconds(5), deadline: Duration = .seconds(20)) {
    self.proxy = proxy
    self.customCA = customCA
    self.connectTimeout = connectTimeout
    self.deadline = deadline
  }

  public struct Response: Sendable {
    public var status: Int
    public var body: [UInt8]
    public var text: String { String(decoding: body, as: UTF8.self) }
  }

  /// Sends one request; a failure to connect or answer is a one-line storage error naming `what`.
  public func send(
    _ method: String, _ url: String, headers: [(String, String)] = [], body: [UInt8]? = nil, what: String
  ) async throws(LifeboatError) -> Response {
    var tls = TLSConfiguration.makeClientConfiguration()
    if let customCA, let certificates = try? NIOSSLCertificate.fromPEMBytes(customCA), !certificates.isEmpty {
      tls.trustRoots = .certificates(certificates)
    }
    var configuration = HTTPClient.Configuration(
      tlsConfiguration: tls, redirectConfiguration: .disallow,
      timeout: .init(connect: .nanoseconds(Int64(connectTimeout.components.seconds) * 1_000_000_000 + connectTimeout.components.attoseconds / 1_000_000_000), read: .seconds(10)))
    configuration.connectionPool.retryConnectionEstablishment = false
    configuration.proxy = proxy?.clientProxy
    var request = HTTPClientRequest(url: url)
    request.method = HTTPMethod(rawValue: method)
    for (name, value) in headers { request.headers.add(name: name, value: value) }
    if let body { request.body = .bytes(body) }
    let seconds = deadline.components.seconds
    do {
      return try await HTTPClient.withHTTPClient(configuration: configuration) { client in
        let response = try await client.execute(request, deadline: .now() + .seconds(seconds))
        let collected = try await response.body.collect(upTo: 1 << 20)
        return Response(status: Int(response.status.code), body: Array(collected.readableBytesView))
      }
    } catch {
      throw .storage("\(what): \(Self.reason(error))")
    }
  }

  static func reason(_ error: any Error) -> String {
    let text = "\(error)".lowercased()
    if text.contains("refused") { return "connection refused" }
    if text.contains("timeout") || text.contains("deadline") { return "no answer in time" }
    if error is NIOSSLError || text.contains("ssl") || text.contains("certificate") { return "TLS failed (AWS_CA_BUNDLE names the CA to trust)" }
    let line = "\(error)".split(whereSeparator: \.isNewline).joined(separator: " ")
    return line.count > 200 ? String(line.prefix(200)) + "..." : line
  }
}

/// STS AssumeRoleWithWebIdentity: a Kubernetes service account token (IRSA) or any OIDC token in
/// a file, exchanged for temporary keys of a role. The token file is read at every fetch (the
/// kubelet rotates it). The request is not signed: the token is the proof.
public struct WebIdentityFetcher: Sendable {
  public var roleARN: String
  public var tokenFile: String
  public var sessionName: String
  /// `AWS_ENDPOINT_URL_STS`, else `https://sts.<region>.amazonaws.com` (or the global endpoint).
  public var endpoint: String
  public var http: CredentialHTTP
  /// `DurationSeconds` to ask for (a profile's `duration_seconds`); nil: the role's default (1 hour).
  public var durationSeconds: Int?

  public init(
    roleARN: String, tokenFile: String, sessionName: String, endpoint: String, http: CredentialHTTP, durationSeconds: Int? = nil
  ) {
    self.durationSeconds = durationSeconds
    self.roleARN = roleARN
    self.tokenFile = tokenFile
    self.sessionName = sessionName
    self.endpoint = endpoint
    self.http = http
  }

  public func fetch() async throws(LifeboatError) -> IssuedCredentials {
    guard let data = FileManager.default.contents(atPath: tokenFile) else {
      throw .storage("web identity token file \(tokenFile) cannot be read")
    }
    let token = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    guard !token.isEmpty else { throw .storage("web identity token file \(tokenFile) is empty") }
    var fields = [
      ("Action", "AssumeRoleWithWebIdentity"), ("Version", "2011-06-15"), ("RoleArn", roleARN),
      ("RoleSessionName", sessionName), ("WebIdentityToken", token),
    ]
    if let durationSeconds { fields.append(("DurationSeconds", String(durationSeconds))) }
    let form = fields.map { "\($0.0)=\(S3Path.encode($0.1, keepSlash: false))" }.joined(separator: "&")
    let what = "STS AssumeRoleWithWebIdentity at \(endpoint) for \(roleARN)"
    let response = try await http.send(
      "POST", endpoint, headers: [("content-type", "application/x-www-form-urlencoded; charset=utf-8"), ("accept", "application/xml")],
      body: Array(form.utf8), what: what)
    guard (200..<300).contains(response.status) else {
      let error = try? S3XML.decode(STSXML.ErrorResponse.self, response.body, what: what)
      let detail = [error?.error.code, error?.error.message].compactMap { $0 }.joined(separator: ": ")
      throw .storage("\(what) refused: HTTP \(response.status)\(detail.isEmpty ? "" : " \(AsyncHTTPTransport.oneLine(detail))")")
    }
    let document = try S3XML.decode(STSXML.AssumeRoleWithWebIdentityResponse.self, response.body, what: what)
    let credentials = document.result.credentials
    return IssuedCredentials(
      keys: S3Credentials(
        accessKey: credentials.accessKeyId, secretKey: Secret(credentials.secretAccessKey),
        sessionToken: Secret(credentials.sessionToken)),
      expiration: S3XML.date(credentials.expiration))
  }
}

enum STSXML {
  struct AssumeRoleWithWebIdentityResponse: Decodable {
    struct Result: Decodable {
      struct Credentials: Decodable {
        var accessKeyId: String
        var secretAccessKey: String
        var sessionToken: String
        var expiration: String
        enum CodingKeys: String, CodingKey {
          case accessKeyId = "AccessKeyId"
          case secretAccessKey = "SecretAccessKey"
          case sessionToken = "SessionToken"
          case expiration = "Expiration"
        }
      }
      var credentials: Credentials
      enum CodingKeys: String, CodingKey { case credentials = "Credentials" }
    }
    var result: Result
    enum CodingKeys: String, CodingKey { case result = "AssumeRoleWithWebIdentityResult" }
  }

  struct ErrorResponse: Decodable {
    var error: S3XML.ErrorDocument
    enum CodingKeys: String, CodingKey { case error = "Error" }
  }
}

/// The JSON document the container endpoint and IMDS answer with.
struct MetadataCredentials: Decodable {
  var AccessKeyId: String
  var SecretAccessKey: String
  var Token: String?
  var Expiration: String?
  var Code: String?

  static func parse(_ body: [UInt8], what: String) throws(LifeboatError) -> IssuedCredentials {
    guard let document = try? JSONDecoder().decode(MetadataCredentials.self, from: Data(body)) else {
      throw .storage("unexpected answer from \(what): not a credentials document")
    }
    if let code = document.Code, code != "Success" { throw .storage("\(what) answered \(AsyncHTTPTransport.oneLine(code))") }
    guard !document.AccessKeyId.isEmpty, !document.SecretAccessKey.isEmpty else {
      throw .storage("\(what) answered without keys")
    }
    return IssuedCredentials(
      keys: S3Credentials(
        accessKey: document.AccessKeyId, secretKey: Secret(document.SecretAccessKey),
        sessionToken: document.Token.flatMap { $0.isEmpty ? nil : Secret($0) }),
      expiration: document.Expiration.map { S3XML.date($0) })
  }
}

/// The container credentials endpoint (ECS task roles, EKS Pod Identity):
/// `AWS_CONTAINER_CREDENTIALS_FULL_URI` (or `http://169.254.170.2` + `..._RELATIVE_URI`), with
/// `AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE` (read at every fetch) or `..._TOKEN` as the
/// `Authorization` header.
public struct ContainerCredentialsFetcher: Sendable {
  public var url: String
  public var token: String?
  public var tokenFile: String?
  public var http: CredentialHTTP

  public init(url: String, token: String?, tokenFile: String?, http: CredentialHTTP) {
    self.url = url
    self.token = token
    self.tokenFile = tokenFile
    self.http = http
  }

  /// The SDKs' rule: a full URI must be HTTPS, or HTTP to a loopback address or the ECS/EKS
  /// link-local addresses, so keys are never fetched in clear text across a network.
  public static func check(fullURI: String) throws(LifeboatError) {
    guard let url = URL(string: fullURI), let scheme = url.scheme?.lowercased(), let host = url.host?.lowercased() else {
      throw .usage("AWS_CONTAINER_CREDENTIALS_FULL_URI \(fullURI) is not a URL")
    }
    if scheme == "https" { return }
    let allowed = host == "localhost" || host.hasPrefix("127.") || host == "::1" || host == "[::1]"
      || host == "169.254.170.2" || host == "169.254.170.23" || host.contains("fd00:ec2::23")
    guard scheme == "http", allowed else {
      throw .usage("AWS_CONTAINER_CREDENTIALS_FULL_URI \(fullURI): http:// is allowed to loopback and 169.254.170.2/23 only")
    }
  }

  public func fetch() async throws(LifeboatError) -> IssuedCredentials {
    var headers: [(String, String)] = [("accept", "application/json")]
    if let tokenFile {
      guard let data = FileManager.default.contents(atPath: tokenFile) else {
        throw .storage("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE \(tokenFile) cannot be read")
      }
      headers.append(("authorization", String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)))
    } else if let token {
      headers.append(("authorization", token))
    }
    let what = "the container credentials endpoint \(url)"
    let response = try await http.send("GET", url, headers: headers, what: what)
    guard response.status == 200 else { throw .storage("\(what) answered HTTP \(response.status)") }
    return try MetadataCredentials.parse(response.body, what: what)
  }
}

/// The instance role through IMDSv2: a session token (PUT /latest/api/token), the role's name,
/// then its keys. Endpoint `AWS_EC2_METADATA_SERVICE_ENDPOINT`, default `http://169.254.169.254`.
public struct InstanceRoleFetcher: Sendable {
  public var endpoint: String
  public var http: CredentialHTTP

  public init(endpoint: String, http: CredentialHTTP) {
    var endpoint = endpoint
    while endpoint.hasSuffix("/") { endpoint.removeLast() }
    self.endpoint = endpoint
    self.http = http
  }

  public func fetch() async throws(LifeboatError) -> IssuedCredentials {
    let what = "the instance metadata service at \(endpoint)"
    let tokenResponse = try await http.send(
      "PUT", endpoint + "/latest/api/token", headers: [("x-aws-ec2-metadata-token-ttl-seconds", "21600")], body: [],
      what: what)
    guard tokenResponse.status == 200, !tokenResponse.body.isEmpty else {
      throw .storage("\(what) refused an IMDSv2 token: HTTP \(tokenResponse.status)")
    }
    let token = [("x-aws-ec2-metadata-token", tokenResponse.text.trimmingCharacters(in: .whitespacesAndNewlines))]
    let base = endpoint + "/latest/meta-data/iam/security-credentials/"
    let roles = try await http.send("GET", base, headers: token, what: what)
    guard roles.status == 200,
      let role = roles.text.split(whereSeparator: \.isNewline).first.map({ String($0).trimmingCharacters(in: .whitespaces) }),
      !role.isEmpty, !role.contains("/")
    else {
      throw .storage("\(what) has no instance role (HTTP \(roles.status)): attach an IAM role to the instance")
    }
    let keys = try await http.send("GET", base + S3Path.encode(role, keepSlash: false), headers: token, what: what)
    guard keys.status == 200 else { throw .storage("\(what) answered HTTP \(keys.status) for role \(role)") }
    return try MetadataCredentials.parse(keys.body, what: "\(what) (role \(role))")
  }
}
