import Foundation
import LifeboatCore

/// S3 Object Lock on every object Lifeboat writes (`--s3-object-lock-mode/-days`,
/// `lifeboat.s3.object_lock_mode/_days`): the mode and how long each object stays locked from
/// the moment it is written. The bucket must have Object Lock enabled (S3 refuses otherwise).
/// Locked writes carry a Content-MD5 or a checksum (`S3Checksum`), as S3 requires.
public struct S3ObjectLock: Sendable, Equatable, CustomStringConvertible {
  public enum Mode: String, Sendable, Equatable {
    /// Users with `s3:BypassGovernanceRetention` may still delete.
    case governance = "GOVERNANCE"
    /// Nobody can delete before the date, the root account included.
    case compliance = "COMPLIANCE"
  }

  public var mode: Mode
  /// How long after its write an object stays locked.
  public var retention: TimeInterval

  public init(mode: Mode, retention: TimeInterval) {
    self.mode = mode
    self.retention = retention
  }

  public var description: String { "\(mode.rawValue) for \(Int(retention / 86400)) days" }

  /// The lock from its settings: `mode` GOVERNANCE or COMPLIANCE; `days` a number of days, or
  /// `prune` for "until retention would prune it" (`pruneAge`: RKE's retention × interval_hours;
  /// nil when retention is by counts, which gives no date in advance).
  public static func resolve(
    mode: String?, days: String?, pruneAge: TimeInterval?, names: (mode: String, days: String) = ("--s3-object-lock-mode", "--s3-object-lock-days")
  ) throws(LifeboatError) -> S3ObjectLock? {
    guard let mode else {
      if days != nil { throw .usage("\(names.days) needs \(names.mode) GOVERNANCE or COMPLIANCE") }
      return nil
    }
    guard let parsed = Mode(rawValue: mode.uppercased()) else {
      throw .usage("\(names.mode) \(mode): expected GOVERNANCE or COMPLIANCE")
    }
    guard let days else { throw .usage("\(names.mode) needs \(names.days) (a number of days, or prune)") }
    if days == "prune" {
      guard let pruneAge else {
        throw .usage(
          "\(names.days) prune needs RKE's age-based retention (retention × interval_hours): with keep_* counts no date is known in advance; give a number of days")
      }
      return S3ObjectLock(mode: parsed, retention: pruneAge)
    }
    guard let count = Int(days), (1...36500).contains(count) else {
      throw .usage("\(names.days) \(days): expected a number of days from 1 to 36500, or prune")
    }
    return S3ObjectLock(mode: parsed, retention: TimeInterval(count) * 86400)
  }

  /// The headers of a new object written at `now`.
  func headers(now: Date) -> [(String, String)] {
    [("x-amz-object-lock-mode", mode.rawValue), ("x-amz-object-lock-retain-until-date", Self.iso8601(now + retention))]
  }

  static func iso8601(_ date: Date) -> String {
    let formatter = ISO8601DateFormatter()
    formatter.formatOptions = [.withInternetDateTime]
    return formatter.string(from: date)
  }
}

/// The integrity check sent with each object and part: CRC-32C (`x-amz-checksum-crc32c`,
/// computed by ISA-L, which lets requests over HTTPS be signed with `UNSIGNED-PAYLOAD` instead of
/// a SHA-256 of every part), or none for stores that refuse the header (`--s3-checksum off`:
/// payloads are then signed with their SHA-256, as before).
public enum S3Checksum: String, Sendable, Equatable {
  case crc32c
  case off

  public init(setting: String, name: String = "--s3-checksum") throws(LifeboatError) {
    guard let value = S3Checksum(rawValue: setting.lowercased()) else { throw .usage("\(name) \(setting): expected crc32c or off") }
    self = value
  }

  /// `x-amz-checksum-crc32c`'s value: the big-endian CRC in base64.
  static func crc32c(_ bytes: [UInt8]) -> String {
    let value = CRC32C.checksum(bytes)
    return Data([UInt8(value >> 24), UInt8(value >> 16 & 0xFF), UInt8(value >> 8 & 0xFF), UInt8(value & 0xFF)]).base64EncodedString()
  }
}

/// Where an object's lock stands, from its HEAD (`x-amz-object-lock-*`).
public struct ObjectLockState: Sendable, Equatable {
  public var mode: String?
  public var retainUntil: Date?
  public var legalHold: Bool

  public init(mode: String?, retainUntil: Date?, legalHold: Bool) {
    self.mode = mode
    self.retainUntil = retainUntil
    self.legalHold = legalHold
  }

  /// Whether a delete must wait: a legal hold, or a retain-until date after `now`.
  public func holds(at now: Date) -> Bool { legalHold || (retainUntil.map { $0 > now } ?? false) }

  public var description: String {
    var parts: [String] = []
    if let retainUntil { parts.append("locked until \(S3ObjectLock.iso8601(retainUntil))" + (mode.map { " (\($0))" } ?? "")) }
    if legalHold { parts.append("under legal hold") }
    return parts.joined(separator: ", ")
  }
}
