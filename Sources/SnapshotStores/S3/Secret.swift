/// A secret value (secret key, session token) that never prints: its description and debug
/// description are `**redacted**`, so it cannot reach a log line or an error message by accident.
public struct Secret: Sendable, Equatable, CustomStringConvertible, CustomDebugStringConvertible {
  public let value: String
  public init(_ value: String) { self.value = value }
  public var description: String { "**redacted**" }
  public var debugDescription: String { "**redacted**" }
}
