import Crypto
import Foundation
import LifeboatCore

/// Server-side encryption of the objects Lifeboat writes (`--s3-sse`, `lifeboat.s3.sse`):
/// S3-managed keys (`AES256`), KMS (`aws:kms`, with an optional key id), or a key of the
/// customer's own (SSE-C, HTTPS only), which S3 needs on every request that touches the data.
public enum S3ServerSideEncryption: Sendable, Equatable, CustomStringConvertible {
  case s3Managed
  case kms(keyID: String?)
  /// SSE-C: the key in base64 (a `Secret`: it never prints) and its MD5 in base64.
  case customerKey(key: Secret, md5: String)

  /// `AES256` or `aws:kms` (`--s3-sse`), with `--s3-sse-kms-key-id` for KMS.
  public init(mode: String, kmsKeyID: String?) throws(LifeboatError) {
    switch mode {
    case "AES256": self = .s3Managed
    case "aws:kms": self = .kms(keyID: kmsKeyID.flatMap { $0.isEmpty ? nil : $0 })
    default: throw .usage("--s3-sse \(mode): expected AES256 or aws:kms")
    }
    if case .s3Managed = self, kmsKeyID != nil { throw .usage("--s3-sse-kms-key-id needs --s3-sse aws:kms") }
  }

  /// SSE-C from a file holding the 256-bit key: 32 raw bytes, or their base64 (44 characters).
  public init(customerKeyFile path: String) throws(LifeboatError) {
    guard let data = FileManager.default.contents(atPath: path) else {
      throw .usage("--s3-sse-customer-key-file \(path) does not exist or cannot be read")
    }
    var key = [UInt8](data)
    if key.count != 32 {
      let text = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
      guard let decoded = Data(base64Encoded: text), decoded.count == 32 else {
        throw .usage("--s3-sse-customer-key-file \(path): expected a 256-bit key (32 bytes, or their base64)")
      }
      key = [UInt8](decoded)
    }
    self = .customerKey(key: Secret(Data(key).base64EncodedString()), md5: Data(Insecure.MD5.hash(data: key)).base64EncodedString())
  }

  /// The setting from its three options (flags or `lifeboat.s3`), checked: one kind at a time,
  /// SSE-C over HTTPS only (S3 refuses the key over plain HTTP, and it must not travel in clear).
  public static func resolve(
    mode: String?, kmsKeyID: String?, customerKeyFile: String?, endpoint: S3Endpoint, prefix: String = "--s3-"
  ) throws(LifeboatError) -> S3ServerSideEncryption? {
    func name(_ suffix: String) -> String { prefix + (prefix.hasPrefix("--") ? suffix : suffix.replacingOccurrences(of: "-", with: "_")) }
    if let customerKeyFile {
      guard mode == nil, kmsKeyID == nil else {
        throw .usage("\(name("sse-customer-key-file")) cannot be combined with \(name("sse")) or \(name("sse-kms-key-id"))")
      }
      guard endpoint.secure else {
        throw .usage("\(name("sse-customer-key-file")) needs an https:// endpoint (the key travels with every request)")
      }
      return try S3ServerSideEncryption(customerKeyFile: customerKeyFile)
    }
    guard let mode else {
      if kmsKeyID != nil { throw .usage("\(name("sse-kms-key-id")) needs \(name("sse")) aws:kms") }
      return nil
    }
    return try S3ServerSideEncryption(mode: mode, kmsKeyID: kmsKeyID)
  }

  public var description: String {
    switch self {
    case .s3Managed: "SSE-S3 (AES256)"
    case .kms(let keyID): "SSE-KMS" + (keyID.map { " (key \($0))" } ?? " (the bucket's default key)")
    case .customerKey: "SSE-C (customer key)"
    }
  }

  public var isCustomerKey: Bool {
    if case .customerKey = self { return true }
    return false
  }

  /// Headers of a request that creates an object (PUT, CreateMultipartUpload).
  var creationHeaders: [(String, String)] {
    switch self {
    case .s3Managed: [("x-amz-server-side-encryption", "AES256")]
    case .kms(let keyID):
      [("x-amz-server-side-encryption", "aws:kms")] + (keyID.map { [("x-amz-server-side-encryption-aws-kms-key-id", $0)] } ?? [])
    case .customerKey: accessHeaders
    }
  }

  /// Headers of a request that reads or adds to an object's data (UploadPart, GET, HEAD): SSE-C's key.
  var accessHeaders: [(String, String)] {
    guard case .customerKey(let key, let md5) = self else { return [] }
    return [
      ("x-amz-server-side-encryption-customer-algorithm", "AES256"),
      ("x-amz-server-side-encryption-customer-key", key.value),
      ("x-amz-server-side-encryption-customer-key-md5", md5),
    ]
  }
}
