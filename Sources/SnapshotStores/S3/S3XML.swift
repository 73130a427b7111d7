import Foundation
import LifeboatCore
import XMLCoder

/// The XML documents of the S3 REST API that Lifeboat reads and writes.
enum S3XML {
  struct ListBucketResult: Decodable {
    struct Object: Decodable {
      var key: String
      var lastModified: String
      var size: UInt64
      enum CodingKeys: String, CodingKey {
        case key = "Key"
        case lastModified = "LastModified"
        case size = "Size"
      }
    }
    var isTruncated: Bool?
    var nextContinuationToken: String?
    var contents: [Object]?
    enum CodingKeys: String, CodingKey {
      case isTruncated = "IsTruncated"
      case nextContinuationToken = "NextContinuationToken"
      case contents = "Contents"
    }
  }

  struct InitiateMultipartUploadResult: Decodable {
    var uploadId: String
    enum CodingKeys: String, CodingKey { case uploadId = "UploadId" }
  }

  struct ListMultipartUploadsResult: Decodable {
    struct Upload: Decodable {
      var key: String
      var uploadId: String
      var initiated: String?
      enum CodingKeys: String, CodingKey {
        case key = "Key"
        case uploadId = "UploadId"
        case initiated = "Initiated"
      }
    }
    var uploads: [Upload]?
    enum CodingKeys: String, CodingKey { case uploads = "Upload" }
  }

  struct ErrorDocument: Decodable {
    var code: String?
    var message: String?
    enum CodingKeys: String, CodingKey {
      case code = "Code"
      case message = "Message"
    }
  }

  struct CompleteMultipartUpload: Encodable {
    struct Part: Encodable {
      var partNumber: Int
      var eTag: String
      var checksumCRC32C: String?
      enum CodingKeys: String, CodingKey {
        case partNumber = "PartNumber"
        case eTag = "ETag"
        case checksumCRC32C = "ChecksumCRC32C"
      }
    }
    var parts: [Part]
    enum CodingKeys: String, CodingKey { case parts = "Part" }
  }

  static func decode<T: Decodable>(_ type: T.Type, _ body: [UInt8], what: String) throws(LifeboatError) -> T {
    // S3 answers in UTF-8. FoundationXML traps (SIGILL) on an element name that is not valid
    // UTF-8 (found by fuzzing: corpus/s3xml/crash-invalid-utf8-element.xml), so a broken or
    // hostile endpoint could kill an agent: such a body is refused before it reaches the parser.
    guard String(validating: body, as: UTF8.self) != nil, isPlainDocument(body) else {
      throw .storage("unexpected answer to \(what): not the XML S3 sends")
    }
    do {
      let decoder = XMLDecoder()
      decoder.shouldProcessNamespaces = true
      return try decoder.decode(T.self, from: Data(body))
    } catch {
      throw .storage("unexpected answer to \(what): not the XML S3 sends")
    }
  }

  /// Elements and text only, after at most one leading XML declaration, as S3 writes its
  /// answers. Refused: processing instructions (FoundationXML dereferences NULL on `<?x?>`,
  /// found by fuzzing: corpus/s3xml/crash-empty-processing-instruction.xml), and DOCTYPE,
  /// entities, comments and CDATA (`<!`), which S3 never sends and which only widen what the
  /// parser must survive.
  static func isPlainDocument(_ body: [UInt8]) -> Bool {
    var rest = body[...]
    while let first = rest.first, first == 0x20 || first == 0x09 || first == 0x0A || first == 0x0D || first == 0xEF || first == 0xBB || first == 0xBF {
      rest = rest.dropFirst()
    }
    if rest.starts(with: Array("<?xml ".utf8)) {
      guard let end = rest.indices.first(where: { rest[$0] == 0x3F && rest.index(after: $0) < rest.endIndex && rest[rest.index(after: $0)] == 0x3E })
      else { return false }
      rest = rest[rest.index(end, offsetBy: 2)...]
    }
    for index in rest.indices.dropLast() where rest[index] == 0x3C {
      let next = rest[rest.index(after: index)]
      if next == 0x3F || next == 0x21 { return false }
    }
    return true
  }

  static func encode<T: Encodable>(_ value: T, root: String) -> [UInt8] {
    let encoder = XMLEncoder()
    let data = (try? encoder.encode(value, withRootKey: root, header: XMLHeader(version: 1.0, encoding: "UTF-8"))) ?? Data()
    return [UInt8](data)
  }

  /// The `<Code>` and `<Message>` of an error document, if the body is one.
  static func error(_ body: [UInt8]) -> (code: String?, message: String?) {
    guard !body.isEmpty, let document = try? decode(ErrorDocument.self, body, what: "error") else { return (nil, nil) }
    return (document.code, document.message)
  }

  /// S3's timestamps: ISO 8601 with or without fractional seconds.
  static func date(_ text: String) -> Date {
    let formatter = ISO8601DateFormatter()
    formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
    if let date = formatter.date(from: text) { return date }
    formatter.formatOptions = [.withInternetDateTime]
    return formatter.date(from: text) ?? Date(timeIntervalSince1970: 0)
  }
}

/// Every S3 response parser over one body, for the fuzz target (`fuzz/`): the parsers see bytes
/// from the network, so none may crash on any input; each returns or throws a `LifeboatError`.
public enum S3ResponseParsers {
  public static func parseAll(_ body: [UInt8]) {
    _ = try? S3XML.decode(S3XML.ListBucketResult.self, body, what: "fuzz")
    _ = try? S3XML.decode(S3XML.InitiateMultipartUploadResult.self, body, what: "fuzz")
    _ = try? S3XML.decode(S3XML.ListMultipartUploadsResult.self, body, what: "fuzz")
    _ = S3XML.error(body)
    _ = S3XML.date(String(decoding: body.prefix(64), as: UTF8.self))
  }
}
