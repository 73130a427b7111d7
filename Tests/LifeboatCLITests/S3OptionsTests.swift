import ArgumentParser
import Foundation
import LifeboatCore
import Testing

@testable import lifeboat

/// The S3 flags (RKE's names) shared by `snapshot save|list|inspect|verify|delete` and `local up`.
@Suite struct S3OptionsTests {
  /// Every command with S3 flags, with its required arguments.
  static let commands: [[String]] = [
    ["snapshot", "save", "--endpoints", "http://127.0.0.1:2379"],
    ["snapshot", "list"],
    ["snapshot", "inspect", "n"],
    ["snapshot", "verify", "n"],
    ["snapshot", "delete", "n"],
    ["local", "up"],
  ]

  static func remote(_ arguments: [String]) throws -> S3Options {
    let command = try Lifeboat.parseAsRoot(arguments)
    switch command {
    case let c as SnapshotSave: return c.remote
    case let c as SnapshotList: return c.remote
    case let c as SnapshotInspect: return c.remote
    case let c as SnapshotVerify: return c.remote
    case let c as SnapshotDelete: return c.remote
    case let c as LocalUp: return c.remote
    default:
      Issue.record("\(arguments) has no S3 options (\(type(of: command)))")
      throw ValidationError("no S3 options")
    }
  }

  static let keys = ["--access-key", "AKIAEXAMPLE", "--secret-key", "wJalrXUtnFEMI"]

  @Test(arguments: commands)
  func defaults(command: [String]) throws {
    let s3 = try Self.remote(command)
    #expect(s3.s3 == false)
    #expect(s3.s3Endpoint == "s3.amazonaws.com")
    #expect(s3.s3EndpointCA == nil)
    #expect(s3.bucketName == nil)
    #expect(s3.region == "")
    #expect(s3.folder == "")
    #expect(s3.accessKey == nil)
    #expect(s3.secretKey == nil)
    #expect(s3.insecureHTTP == false)
    #expect(s3.pathStyle == false)
    #expect(s3.partSizeMiB == 8)
    #expect(s3.partsInFlight == 4)
  }

  @Test(arguments: commands)
  func everyFlagLandsInItsField(command: [String]) throws {
    let s3 = try Self.remote(command + [
      "--s3", "--s3-endpoint", "minio.example:9000", "--s3-endpoint-ca", "/etc/ssl/minio-ca.pem", "--bucket-name", "etcd-backups",
      "--region", "eu-central-1", "--folder", "prod/cluster-a", "--access-key", "AK", "--secret-key", "SK",
      "--s3-insecure-http", "--s3-path-style", "--s3-part-size", "64", "--s3-parts-in-flight", "8",
    ])
    #expect(s3.s3 == true)
    #expect(s3.s3Endpoint == "minio.example:9000")
    #expect(s3.s3EndpointCA == "/etc/ssl/minio-ca.pem")
    #expect(s3.bucketName == "etcd-backups")
    #expect(s3.region == "eu-central-1")
    #expect(s3.folder == "prod/cluster-a")
    #expect(s3.accessKey == "AK")
    #expect(s3.secretKey == "SK")
    #expect(s3.insecureHTTP == true)
    #expect(s3.pathStyle == true)
    #expect(s3.partSizeMiB == 64)
    #expect(s3.partsInFlight == 8)
  }

  /// Flags that only mean something with --s3 are refused without it, at parse time.
  @Test(arguments: commands, [
    ["--bucket-name", "backups"], ["--access-key", "AK"], ["--secret-key", "SK"], ["--s3-endpoint-ca", "ca.pem"], ["--folder", "f"],
  ])
  func s3FlagsWithoutS3AreAUsageError(command: [String], flag: [String]) {
    expectUsageError(command + flag, messageContains: ["S3 flags were given without --s3"])
  }

  @Test(arguments: commands, ["4", "0", "513", "-8"])
  func partSizeOutOfRangeIsAUsageError(command: [String], size: String) {
    expectUsageError(command + ["--s3-part-size=\(size)"], messageContains: ["--s3-part-size must be 5 to 512 (MiB)"])
  }

  @Test(arguments: commands, ["0", "17", "-1"])
  func partsInFlightOutOfRangeIsAUsageError(command: [String], count: String) {
    expectUsageError(command + ["--s3-parts-in-flight=\(count)"], messageContains: ["--s3-parts-in-flight must be 1 to 16"])
  }

  /// The limits themselves are accepted; expected: [part size in MiB, parts in flight].
  @Test(arguments: [(["--s3-part-size", "5"], [5, 4]), (["--s3-part-size", "512"], [512, 4]),
                    (["--s3-parts-in-flight", "1"], [8, 1]), (["--s3-parts-in-flight", "16"], [8, 16])])
  func partLimitsAreInclusive(flags: [String], expected: [Int]) throws {
    let s3 = try Self.remote(["snapshot", "list", "--s3", "--bucket-name", "backups"] + Self.keys + flags)
    let configuration = try #require(try s3.configuration())
    #expect(configuration.partSize == expected[0] << 20)
    #expect(configuration.partsInFlight == expected[1])
  }

  @Test(arguments: ["8MiB", "", "eight"])
  func partSizeMustBeANumber(value: String) {
    expectUsageError(["snapshot", "list", "--s3-part-size", value], messageContains: ["'\(value)'", "--s3-part-size"])
  }

  // MARK: S3Options.configuration(): checked before any request

  @Test func configurationFromFlags() async throws {
    let s3 = try Self.remote(
      ["snapshot", "list", "--s3", "--bucket-name", "etcd-backups", "--folder", "/prod//a/", "--region", "eu-central-1"] + Self.keys)
    let configuration = try #require(try s3.configuration())
    #expect(configuration.bucket == "etcd-backups")
    #expect(configuration.folder == "prod/a")
    #expect(configuration.region == "eu-central-1")
    #expect(try await configuration.credentials.credentials().accessKey == "AKIAEXAMPLE")
    #expect(configuration.credentials.source == .flags)
    #expect(configuration.endpoint.secure)
    #expect(configuration.endpoint.host == "s3.amazonaws.com")
    #expect(configuration.endpoint.port == nil)
    #expect(configuration.pathStyle == false, "virtual-host style for AWS")
    #expect(configuration.partSize == 8 << 20)
    #expect(configuration.partsInFlight == 4)
    #expect(configuration.customCA == nil)
    #expect(!"\(configuration.credentials)".contains("wJalrXUtnFEMI"), "the secret never prints")
  }

  @Test func pathStyleForCustomEndpointsAndOnRequest() throws {
    let custom = try #require(try Self.remote(["snapshot", "list", "--s3", "--bucket-name", "backups", "--s3-endpoint", "minio.example:9000"] + Self.keys).configuration())
    #expect(custom.pathStyle == true)
    #expect(custom.endpoint.host == "minio.example")
    #expect(custom.endpoint.port == 9000)
    #expect(custom.endpoint.secure, "host:port means HTTPS")
    let forced = try #require(try Self.remote(["snapshot", "list", "--s3", "--bucket-name", "backups", "--s3-path-style"] + Self.keys).configuration())
    #expect(forced.pathStyle == true)
  }

  @Test func plainHTTPEndpointNeedsInsecureHTTP() throws {
    let refused = try Self.remote(["snapshot", "list", "--s3", "--bucket-name", "backups", "--s3-endpoint", "http://127.0.0.1:9000"] + Self.keys)
    expectLifeboatUsageError(messageContains: ["http://127.0.0.1:9000", "plain HTTP", "--s3-insecure-http"]) { try refused.configuration() }

    let allowed = try Self.remote(
      ["snapshot", "list", "--s3", "--bucket-name", "backups", "--s3-endpoint", "http://127.0.0.1:9000", "--s3-insecure-http"] + Self.keys)
    let configuration = try #require(try allowed.configuration())
    #expect(configuration.endpoint.secure == false)
    #expect(configuration.endpoint.host == "127.0.0.1")
    #expect(configuration.endpoint.port == 9000)
  }

  @Test(arguments: ["ftp://s3.example", "https://s3.example/bucket", "s3.example:0", "s3.example:http", "user@s3.example", ""])
  func badEndpointsAreUsageErrors(endpoint: String) throws {
    let s3 = try Self.remote(["snapshot", "list", "--s3", "--bucket-name", "backups", "--s3-endpoint", endpoint] + Self.keys)
    expectLifeboatUsageError(messageContains: ["S3 endpoint"]) { try s3.configuration() }
  }

  @Test(arguments: commands)
  func s3WithoutABucketIsAUsageError(command: [String]) throws {
    let s3 = try Self.remote(command + ["--s3"] + Self.keys)
    expectLifeboatUsageError(messageContains: ["--s3 needs --bucket-name"]) { try s3.configuration() }
  }

  @Test(arguments: ["ab", "-backups", ".backups", "back ups", "back/ups", "bäckups"])
  func badBucketNamesAreUsageErrors(bucket: String) throws {
    let s3 = try Self.remote(["snapshot", "list", "--s3", "--bucket-name=\(bucket)"] + Self.keys)
    expectLifeboatUsageError(messageContains: ["invalid --bucket-name"]) { try s3.configuration() }
  }

  @Test func anEmptySecretKeyIsAUsageError() throws {
    let s3 = try Self.remote(["snapshot", "list", "--s3", "--bucket-name", "backups", "--access-key", "AK", "--secret-key", ""])
    expectLifeboatUsageError(messageContains: ["both an access key and a secret key"]) { try s3.configuration() }
  }

  @Test(.enabled(if: ProcessInfo.processInfo.environment["AWS_ACCESS_KEY_ID"] == nil
                   && ProcessInfo.processInfo.environment["AWS_SECRET_ACCESS_KEY"] == nil))
  func noCredentialsIsAUsageError() throws {
    let s3 = try Self.remote(["snapshot", "list", "--s3", "--bucket-name", "backups"])
    let none = ["HOME": "/nonexistent-lifeboat-home", "AWS_EC2_METADATA_DISABLED": "true"]
    expectLifeboatUsageError(messageContains: ["no S3 credentials"]) { try s3.configuration(environment: none) }
    // Without AWS_EC2_METADATA_DISABLED, the last source is the instance role (asked at the first request).
    #expect(try s3.configuration(environment: ["HOME": "/nonexistent-lifeboat-home"])?.credentials.source
      == .instanceRole(endpoint: "http://169.254.169.254"))
    let half = try Self.remote(["snapshot", "list", "--s3", "--bucket-name", "backups", "--access-key", "AK"])
    expectLifeboatUsageError(messageContains: ["both an access key and a secret key"]) { try half.configuration() }
  }

  @Test func aMissingCAFileIsAUsageError() throws {
    let s3 = try Self.remote(
      ["snapshot", "list", "--s3", "--bucket-name", "backups", "--s3-endpoint-ca", "/nonexistent/lifeboat-test-ca.pem"] + Self.keys)
    expectLifeboatUsageError(messageContains: ["/nonexistent/lifeboat-test-ca.pem"]) { try s3.configuration() }
  }

  @Test func pemTextIsAcceptedAsCA() throws {
    let pem = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
    // PEM text starts with "-", so it must be given as --s3-endpoint-ca=<text>.
    let s3 = try Self.remote(["snapshot", "list", "--s3", "--bucket-name", "backups", "--s3-endpoint-ca=\(pem)"] + Self.keys)
    #expect(try s3.configuration()?.customCA == Array(pem.utf8))
  }
}

/// Every S3 flag needs --s3: a forgotten --s3 is an error naming the flags, never a silent
/// local-only run.
@Suite struct S3FlagsNeedS3Tests {
  @Test(arguments: [
    ["--s3-endpoint", "minio:9000"], ["--region", "eu-west-1"], ["--s3-insecure-http"], ["--s3-path-style"],
    ["--s3-part-size", "16"], ["--s3-parts-in-flight", "2"],
  ])
  func aForgottenS3IsAUsageErrorNamingTheFlag(flag: [String]) {
    expectUsageError(["snapshot", "list"] + flag, messageContains: ["without --s3", flag[0]])
  }
}
