import Foundation

/// Bytes that must never print (a cluster state file holds every private key of the cluster):
/// its descriptions are `**redacted**`; encoded as base64 only to travel to the operator over
/// mutual TLS.
public struct SecretBytes: Codable, Sendable, Equatable, CustomStringConvertible, CustomDebugStringConvertible {
  public let bytes: [UInt8]
  public init(_ bytes: [UInt8]) { self.bytes = bytes }
  public var description: String { "**redacted**" }
  public var debugDescription: String { "**redacted**" }

  public init(from decoder: any Decoder) throws {
    let text = try decoder.singleValueContainer().decode(String.self)
    guard let data = Data(base64Encoded: text) else {
      throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: "not base64"))
    }
    bytes = [UInt8](data)
  }

  public func encode(to encoder: any Encoder) throws {
    var container = encoder.singleValueContainer()
    try container.encode(Data(bytes).base64EncodedString())
  }
}
