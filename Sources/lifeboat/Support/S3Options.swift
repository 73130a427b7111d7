import ArgumentParser
import Foundation
import LifeboatCore
import SnapshotStores

/// S3-compatible storage, with RKE's flag names. Without `--access-key`/`--secret-key`, keys come
/// from the AWS credential chain (`CredentialChain`: environment, web identity, profiles,
/// container endpoint, instance role).
struct S3Options: ParsableArguments {
  @Flag(help: "Use S3-compatible storage as well (RKE's --s3).")
  var s3 = false

  @Option(name: .customLong("s3-endpoint"), help: "host[:port] (HTTPS) or an https:// URL (default: s3.amazonaws.com).")
  var s3EndpointFlag: String?
  var s3Endpoint: String { s3EndpointFlag ?? "s3.amazonaws.com" }

  @Option(name: .customLong("s3-endpoint-ca"), help: "CA certificate (PEM file, or PEM text) to trust for the endpoint.")
  var s3EndpointCA: String?

  @Option(name: .customLong("bucket-name"), help: "The bucket.")
  var bucketName: String?

  @Option(name: .customLong("region"), help: "The bucket's region (empty signs as us-east-1).")
  var regionFlag: String?
  var region: String { regionFlag ?? "" }

  @Option(help: "Key prefix: objects are <folder>/<name>.zip.")
  var folder: String = ""

  @Option(name: .customLong("access-key"), help: "Access key (default: the AWS credential chain: $AWS_ACCESS_KEY_ID, web identity, $AWS_PROFILE, container, instance role).")
  var accessKey: String?

  @Option(name: .customLong("secret-key"), help: "Secret key (default: $AWS_SECRET_ACCESS_KEY).")
  var secretKey: String?

  @Option(name: .customLong("s3-proxy"), help: "HTTP proxy (http://[user:password@]host:port), or none to ignore HTTPS_PROXY/HTTP_PROXY (default: those, minus NO_PROXY).")
  var proxy: String?

  @Option(name: .customLong("s3-sse"), help: "Server-side encryption of the objects written: AES256 (S3's keys) or aws:kms.")
  var sse: String?

  @Option(name: .customLong("s3-sse-kms-key-id"), help: "The KMS key for --s3-sse aws:kms (default: the bucket's).")
  var sseKMSKeyID: String?

  @Option(name: .customLong("s3-sse-customer-key-file"), help: "SSE-C: a file with your 256-bit key (32 bytes or base64), sent with every request (HTTPS only).")
  var sseCustomerKeyFile: String?

  @Option(name: .customLong("s3-object-lock-mode"), help: "Object Lock on every object written: GOVERNANCE or COMPLIANCE (the bucket must have Object Lock enabled).")
  var objectLockMode: String?

  @Option(name: .customLong("s3-object-lock-days"), help: "Days each object stays locked (with --s3-object-lock-mode).")
  var objectLockDays: String?

  @Option(name: .customLong("s3-checksum"), help: "crc32c (default: a CRC-32C with every object and part; over HTTPS the payload is then not hashed for the signature) or off, for stores that refuse the header.")
  var checksum: String?

  @Flag(name: .customLong("s3-insecure-http"), help: "Allow a plain http:// endpoint (data and signatures unencrypted).")
  var insecureHTTP = false

  @Flag(name: .customLong("s3-path-style"), help: "Path-style requests (https://host/bucket/key) even for AWS.")
  var pathStyle = false

  @Option(name: .customLong("s3-part-size"), help: "Multipart part size in MiB (5 to 512; default 8).")
  var partSizeFlag: Int?
  var partSizeMiB: Int { partSizeFlag ?? 8 }

  @Option(name: .customLong("s3-parts-in-flight"), help: "Parts uploaded at once (1 to 16; default 4); memory grows by one part each.")
  var partsInFlightFlag: Int?
  var partsInFlight: Int { partsInFlightFlag ?? 4 }

  /// The S3 flags given on the command line (every one of them needs `--s3`).
  var given: [String] {
    [
      ("--s3-endpoint", s3EndpointFlag != nil), ("--s3-endpoint-ca", s3EndpointCA != nil), ("--bucket-name", bucketName != nil),
      ("--region", regionFlag != nil), ("--folder", !folder.isEmpty), ("--access-key", accessKey != nil),
      ("--secret-key", secretKey != nil), ("--s3-insecure-http", insecureHTTP), ("--s3-path-style", pathStyle),
      ("--s3-part-size", partSizeFlag != nil), ("--s3-parts-in-flight", partsInFlightFlag != nil),
      ("--s3-proxy", proxy != nil), ("--s3-sse", sse != nil), ("--s3-sse-kms-key-id", sseKMSKeyID != nil),
      ("--s3-sse-customer-key-file", sseCustomerKeyFile != nil), ("--s3-object-lock-mode", objectLockMode != nil),
      ("--s3-object-lock-days", objectLockDays != nil), ("--s3-checksum", checksum != nil),
    ].filter(\.1).map(\.0)
  }

  func validate() throws {
    guard (5...512).contains(partSizeMiB) else { throw ValidationError("--s3-part-size must be 5 to 512 (MiB)") }
    guard (1...16).contains(partsInFlight) else { throw ValidationError("--s3-parts-in-flight must be 1 to 16") }
    // A forgotten --s3 would otherwise work on local storage only, silently.
    if !s3, !given.isEmpty { throw ValidationError("S3 flags were given without --s3: \(given.joined(separator: ", "))") }
  }

  /// The `s3backupconfig` of a written cluster.yml (`local up --s3 ...`), or nil without `--s3`.
  /// Keys given by flags are written into the file (0600, as RKE keeps them); keys from the
  /// environment are not, and reach the agents through their environment.
  func backupConfig() throws(LifeboatError) -> S3BackupConfig? {
    guard s3 else { return nil }
    guard let bucket = bucketName, !bucket.isEmpty else { throw .usage("--s3 needs --bucket-name") }
    try S3Configuration.validate(bucket: bucket)
    _ = try S3Endpoint(parsing: s3Endpoint, allowInsecureHTTP: insecureHTTP)
    var customCAText: String?
    if let s3EndpointCA {
      if s3EndpointCA.contains("-----BEGIN") { customCAText = s3EndpointCA } else {
        guard let data = FileManager.default.contents(atPath: s3EndpointCA) else {
          throw .usage("cannot read --s3-endpoint-ca \(s3EndpointCA)")
        }
        customCAText = String(decoding: data, as: UTF8.self)
      }
    }
    return S3BackupConfig(
      accessKey: accessKey, secretKey: secretKey, bucketName: bucket, region: region.isEmpty ? nil : region,
      endpoint: s3Endpoint, customCA: customCAText, folder: folder.isEmpty ? nil : folder)
  }

  /// The S3 configuration, or nil without `--s3`. Checks everything before any request.
  func configuration(environment: [String: String] = ProcessInfo.processInfo.environment) throws(LifeboatError) -> S3Configuration? {
    guard s3 else { return nil }
    guard let bucket = bucketName, !bucket.isEmpty else { throw .usage("--s3 needs --bucket-name") }
    try S3Configuration.validate(bucket: bucket)
    let endpoint = try S3Endpoint(parsing: s3Endpoint, allowInsecureHTTP: insecureHTTP)
    let credentials = try CredentialChain.resolve(
      given: .init(accessKey: accessKey, secretKey: secretKey, source: .flags, names: "--access-key and --secret-key"),
      environment: environment, region: region, proxySetting: proxy)
    var configuration = S3Configuration(
      endpoint: endpoint, bucket: bucket, folder: folder, region: region, credentials: credentials,
      pathStyle: pathStyle ? true : nil, customCA: try customCA(),
      proxy: try S3Proxy.resolve(setting: proxy, endpoint: endpoint, environment: environment))
    configuration.serverSideEncryption = try S3ServerSideEncryption.resolve(
      mode: sse, kmsKeyID: sseKMSKeyID, customerKeyFile: sseCustomerKeyFile, endpoint: endpoint)
    configuration.objectLock = try S3ObjectLock.resolve(mode: objectLockMode, days: objectLockDays, pruneAge: nil)
    if let checksum { configuration.checksum = try S3Checksum(setting: checksum) }
    configuration.partSize = partSizeMiB << 20
    configuration.partsInFlight = partsInFlight
    return configuration
  }

  private func customCA() throws(LifeboatError) -> [UInt8]? {
    guard let s3EndpointCA else { return nil }
    if s3EndpointCA.contains("-----BEGIN") { return Array(s3EndpointCA.utf8) }
    guard let data = FileManager.default.contents(atPath: s3EndpointCA) else {
      throw .usage("--s3-endpoint-ca file \(s3EndpointCA) does not exist or cannot be read")
    }
    return [UInt8](data)
  }

  /// Runs `body` with the S3 store when `--s3` is given, with nil otherwise.
  func withStore<R>(_ body: (S3Store?) async throws -> R) async throws -> R {
    guard let configuration = try configuration() else { return try await body(nil) }
    return try await S3Store.with(configuration) { try await body($0) }
  }
}
