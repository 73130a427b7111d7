import ArgumentParser
import LifeboatCore
import Testing

@testable import lifeboat

/// `lifeboat local up|env|down`.
@Suite struct LocalCommandTests {
  @Test func upDefaults() throws {
    let up = try parse(["local", "up"], as: LocalUp.self)
    #expect(up.nodes == 3)
    #expect(up.tls == false)
    #expect(up.quotaBackendBytes == nil)
    #expect(up.noAgents == false)
    #expect(up.location.dir == ".lifeboat-local")
    #expect(up.remote.s3 == false)
    #expect(try up.remote.backupConfig() == nil, "no s3backupconfig without --s3")
  }

  @Test func upFlags() throws {
    let up = try parse(
      ["local", "up", "--nodes", "5", "--tls", "--quota-backend-bytes", "1073741824", "--no-agents", "--dir", "/tmp/lb"],
      as: LocalUp.self)
    #expect(up.nodes == 5)
    #expect(up.tls == true)
    #expect(up.quotaBackendBytes == 1_073_741_824)
    #expect(up.noAgents == true)
    #expect(up.location.dir == "/tmp/lb")
  }

  @Test(arguments: [1, 9])
  func upAcceptsOneToNineNodes(nodes: Int) throws {
    #expect(try parse(["local", "up", "--nodes", "\(nodes)"], as: LocalUp.self).nodes == nodes)
  }

  /// Checked at parse time (LocalUp.validate), before S3 flags, files or etcd on PATH.
  @Test(arguments: ["0", "10", "-1", "100"])
  func upRefusesOtherNodeCounts(nodes: String) {
    expectUsageError(["local", "up", "--nodes=\(nodes)"], messageContains: ["--nodes must be between 1 and 9"])
  }

  @Test(arguments: ["three", "3.5", ""])
  func upRefusesANonNumericNodeCount(nodes: String) {
    expectUsageError(["local", "up", "--nodes", nodes], messageContains: ["'\(nodes)'", "--nodes"])
  }

  @Test func upRefusesANonNumericQuota() {
    expectUsageError(["local", "up", "--quota-backend-bytes", "2GiB"], messageContains: ["'2GiB'", "--quota-backend-bytes"])
  }

  @Test func upS3FlagsBecomeTheS3BackupConfig() throws {
    let up = try parse(
      ["local", "up", "--s3", "--bucket-name", "backups", "--s3-endpoint", "http://127.0.0.1:5000", "--s3-insecure-http",
       "--folder", "local", "--region", "eu-west-1", "--access-key", "AK", "--secret-key", "SK"],
      as: LocalUp.self)
    #expect(up.remote.insecureHTTP == true)
    let config = try #require(try up.remote.backupConfig())
    #expect(config.bucketName == "backups")
    #expect(config.endpoint == "http://127.0.0.1:5000")
    #expect(config.folder == "local")
    #expect(config.region == "eu-west-1")
    #expect(config.accessKey == "AK")
    #expect(config.secretKey == "SK")
    #expect(config.customCA == nil)
  }

  /// Keys from the environment are not written into cluster.yml; an empty region or folder is left out.
  @Test func upS3BackupConfigLeavesOutWhatWasNotGiven() throws {
    let up = try parse(["local", "up", "--s3", "--bucket-name", "backups"], as: LocalUp.self)
    let config = try #require(try up.remote.backupConfig())
    #expect(config.endpoint == "s3.amazonaws.com")
    #expect(config.accessKey == nil)
    #expect(config.secretKey == nil)
    #expect(config.region == nil)
    #expect(config.folder == nil)
  }

  @Test func upS3WithPEMTextAsCA() throws {
    let pem = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
    // PEM text starts with "-", so it must be given as --s3-endpoint-ca=<text>.
    let up = try parse(["local", "up", "--s3", "--bucket-name", "backups", "--s3-endpoint-ca=\(pem)"], as: LocalUp.self)
    #expect(try up.remote.backupConfig()?.customCA == pem)
  }

  @Test func upS3WithoutABucketIsAUsageError() throws {
    let up = try parse(["local", "up", "--s3"], as: LocalUp.self)
    expectLifeboatUsageError(messageContains: ["--s3 needs --bucket-name"]) { try up.remote.backupConfig() }
  }

  @Test func upS3OverPlainHTTPNeedsInsecureHTTP() throws {
    let up = try parse(["local", "up", "--s3", "--bucket-name", "backups", "--s3-endpoint", "http://127.0.0.1:5000"], as: LocalUp.self)
    expectLifeboatUsageError(messageContains: ["plain HTTP", "--s3-insecure-http"]) { try up.remote.backupConfig() }
  }

  @Test func upS3WithABadBucketIsAUsageError() throws {
    let up = try parse(["local", "up", "--s3", "--bucket-name", "no/slash"], as: LocalUp.self)
    expectLifeboatUsageError(messageContains: ["invalid --bucket-name"]) { try up.remote.backupConfig() }
  }

  @Test func upS3FlagsWithoutS3AreAUsageError() {
    expectUsageError(["local", "up", "--bucket-name", "backups"], messageContains: ["S3 flags were given without --s3"])
  }

  @Test func envDefaultsAndDir() throws {
    #expect(try parse(["local", "env"], as: LocalEnv.self).location.dir == ".lifeboat-local")
    #expect(try parse(["local", "env", "--dir", "/tmp/lb"], as: LocalEnv.self).location.dir == "/tmp/lb")
  }

  @Test func downDefaultsAndFlags() throws {
    let down = try parse(["local", "down"], as: LocalDown.self)
    #expect(down.location.dir == ".lifeboat-local")
    #expect(down.purge == false)
    let purge = try parse(["local", "down", "--purge", "--dir", "/tmp/lb"], as: LocalDown.self)
    #expect(purge.purge == true)
    #expect(purge.location.dir == "/tmp/lb")
  }

  @Test(arguments: [["local", "up", "--dir"], ["local", "env", "--dir"], ["local", "down", "--dir"]])
  func dirNeedsAValue(arguments: [String]) {
    expectUsageError(arguments, messageContains: ["--dir"])
  }

  @Test(arguments: [["local", "env", "x"], ["local", "down", "x"], ["local", "up", "x"]])
  func noPositionalArguments(arguments: [String]) {
    expectUsageError(arguments, messageContains: ["'x'"])
  }
}
