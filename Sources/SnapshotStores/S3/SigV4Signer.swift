import Crypto
import Foundation
import LifeboatCore

/// AWS Signature Version 4 for S3, with the header form of authentication.
///
/// S3's rules (which differ from the generic SigV4 test suite): the path is not normalised and
/// not encoded twice; each path segment is URI-encoded once (everything but `A-Z a-z 0-9 - _ . ~`,
/// so `+`, `:` and spaces in RKE names become `%2B`, `%3A`, `%20`), and the request is sent with
/// exactly that encoded path. Query names and values are encoded the same way (including `/`),
/// sorted by name. `x-amz-content-sha256` carries the payload's SHA-256 (or the empty string's).
public struct SigV4Signer: Sendable {
  public var accessKey: String
  public var secretKey: Secret
  public var sessionToken: Secret?
  public var region: String
  public var service: String = "s3"

  public init(credentials: S3Credentials, region: String) {
    self.accessKey = credentials.accessKey
    self.secretKey = credentials.secretKey
    self.sessionToken = credentials.sessionToken
    self.region = region
  }

  /// SHA-256 of the empty payload.
  public static let emptyPayloadHash = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

  /// Signs a request; returns the headers to add (`x-amz-date`, `x-amz-content-sha256`,
  /// `x-amz-security-token` when there is a session token, `authorization`).
  /// - Parameters:
  ///   - path: the canonical, already encoded path (`S3Path.encode`).
  ///   - query: unencoded query parameters.
  ///   - headers: the headers that will be sent and signed (at least `host`).
  public func sign(
    method: String, path: String, query: [(String, String)], headers: [(String, String)], payloadHash: String,
    date: Date
  ) -> [(String, String)] {
    let amzDate = Self.amzDate(date)
    let day = String(amzDate.prefix(8))
    var all = headers.map { ($0.0.lowercased(), Self.trimmed($0.1)) }
    if !all.contains(where: { $0.0 == "x-amz-date" }) { all.append(("x-amz-date", amzDate)) }
    if !all.contains(where: { $0.0 == "x-amz-content-sha256" }) { all.append(("x-amz-content-sha256", payloadHash)) }
    if let sessionToken { all.append(("x-amz-security-token", sessionToken.value)) }
    all.sort { $0.0 < $1.0 }
    let signedHeaders = all.map(\.0).joined(separator: ";")
    let canonical = [
      method, path, Self.canonicalQuery(query), all.map { "\($0.0):\($0.1)\n" }.joined(), signedHeaders, payloadHash,
    ].joined(separator: "\n")
    let scope = "\(day)/\(region)/\(service)/aws4_request"
    let stringToSign = [
      "AWS4-HMAC-SHA256", amzDate, scope, SHA256.hash(data: Data(canonical.utf8)).hexString,
    ].joined(separator: "\n")
    var key = SymmetricKey(data: Data("AWS4\(secretKey.value)".utf8))
    for part in [day, region, service, "aws4_request"] {
      key = SymmetricKey(data: Data(HMAC<SHA256>.authenticationCode(for: Data(part.utf8), using: key)))
    }
    let signature = Array(HMAC<SHA256>.authenticationCode(for: Data(stringToSign.utf8), using: key)).hexString
    var added = all.filter { ["x-amz-date", "x-amz-content-sha256", "x-amz-security-token"].contains($0.0) }
      .filter { name in !headers.contains { $0.0.lowercased() == name.0 } }
    added.append((
      "authorization",
      "AWS4-HMAC-SHA256 Credential=\(accessKey)/\(scope),SignedHeaders=\(signedHeaders),Signature=\(signature)"
    ))
    return added
  }

  /// `yyyyMMdd'T'HHmmss'Z'` in UTC.
  public static func amzDate(_ date: Date) -> String {
    var calendar = Calendar(identifier: .gregorian)
    calendar.timeZone = TimeZone(identifier: "UTC")!
    let c = calendar.dateComponents([.year, .month, .day, .hour, .minute, .second], from: date)
    return String(format: "%04d%02d%02dT%02d%02d%02dZ", c.year!, c.month!, c.day!, c.hour!, c.minute!, c.second!)
  }

  static func canonicalQuery(_ query: [(String, String)]) -> String {
    let encoded: [(name: String, value: String)] = query.map { pair in
      (S3Path.encode(pair.0, keepSlash: false), S3Path.encode(pair.1, keepSlash: false))
    }
    let sorted = encoded.sorted { a, b in a.name == b.name ? a.value < b.value : a.name < b.name }
    return sorted.map { pair in pair.name + "=" + pair.value }.joined(separator: "&")
  }

  /// Header values: trimmed, inner runs of spaces collapsed to one.
  static func trimmed(_ value: String) -> String {
    value.split(separator: " ", omittingEmptySubsequences: true).joined(separator: " ")
      .trimmingCharacters(in: .whitespaces)
  }
}

/// URI encoding as S3 wants it.
public enum S3Path {
  /// Encodes every byte but the unreserved characters (and `/` when `keepSlash`).
  public static func encode(_ text: String, keepSlash: Bool) -> String {
    var out = ""
    for byte in text.utf8 {
      switch byte {
      case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"),
        UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "_"), UInt8(ascii: "."),
        UInt8(ascii: "~"):
        out.unicodeScalars.append(Unicode.Scalar(byte))
      case UInt8(ascii: "/") where keepSlash:
        out.append("/")
      default:
        out += String(format: "%%%02X", byte)
      }
    }
    return out
  }
}
