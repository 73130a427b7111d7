import Foundation

/// Compression methods Lifeboat writes and reads.
public enum ZipCompressionMethod: UInt16, Sendable {
  case stored = 0
  case deflate = 8
}

/// Constants and little helpers of the ZIP format (PKWARE APPNOTE 6.3).
enum ZipFormat {
  static let localHeaderSignature: UInt32 = 0x0403_4b50
  static let dataDescriptorSignature: UInt32 = 0x0807_4b50
  static let centralHeaderSignature: UInt32 = 0x0201_4b50
  static let endOfCentralDirectorySignature: UInt32 = 0x0605_4b50
  static let zip64EndOfCentralDirectorySignature: UInt32 = 0x0606_4b50
  static let zip64LocatorSignature: UInt32 = 0x0706_4b50
  static let zip64ExtraID: UInt16 = 0x0001

  static let flagDataDescriptor: UInt16 = 1 << 3
  static let flagUTF8: UInt16 = 1 << 11
  static let flagEncrypted: UInt16 = 1 << 0

  static let max32: UInt64 = 0xFFFF_FFFF
  static let max16: UInt64 = 0xFFFF

  static let versionDefault: UInt16 = 20
  static let versionZip64: UInt16 = 45
  static let madeByUnix: UInt16 = 3 << 8

  /// MS-DOS date and time fields of `date` in the local time zone, as ZIP keeps them.
  static func dosDateTime(_ date: Date, timeZone: TimeZone = .current) -> (time: UInt16, date: UInt16) {
    var calendar = Calendar(identifier: .gregorian)
    calendar.timeZone = timeZone
    let c = calendar.dateComponents([.year, .month, .day, .hour, .minute, .second], from: date)
    let year = max(1980, min(2107, c.year ?? 1980))
    let time = UInt16((c.hour ?? 0) << 11 | (c.minute ?? 0) << 5 | (c.second ?? 0) / 2)
    let day = UInt16((year - 1980) << 9 | (c.month ?? 1) << 5 | (c.day ?? 1))
    return (time, day)
  }
}

extension Array where Element == UInt8 {
  mutating func appendLE(_ value: UInt16) {
    append(UInt8(truncatingIfNeeded: value))
    append(UInt8(truncatingIfNeeded: value >> 8))
  }

  mutating func appendLE(_ value: UInt32) {
    for shift in stride(from: 0, to: 32, by: 8) { append(UInt8(truncatingIfNeeded: value >> UInt32(shift))) }
  }

  mutating func appendLE(_ value: UInt64) {
    for shift in stride(from: 0, to: 64, by: 8) { append(UInt8(truncatingIfNeeded: value >> UInt64(shift))) }
  }
}

/// Reads little-endian integers from a byte buffer, with bounds checks.
struct ByteReader {
  let bytes: [UInt8]
  var position: Int

  init(_ bytes: [UInt8], at position: Int = 0) {
    self.bytes = bytes
    self.position = position
  }

  var remaining: Int { bytes.count - position }

  mutating func u16() throws(ZipReadError) -> UInt16 {
    guard remaining >= 2 else { throw .truncated }
    defer { position += 2 }
    return UInt16(bytes[position]) | UInt16(bytes[position + 1]) << 8
  }

  mutating func u32() throws(ZipReadError) -> UInt32 {
    guard remaining >= 4 else { throw .truncated }
    var v: UInt32 = 0
    for i in 0..<4 { v |= UInt32(bytes[position + i]) << (8 * UInt32(i)) }
    position += 4
    return v
  }

  mutating func u64() throws(ZipReadError) -> UInt64 {
    guard remaining >= 8 else { throw .truncated }
    var v: UInt64 = 0
    for i in 0..<8 { v |= UInt64(bytes[position + i]) << (8 * UInt64(i)) }
    position += 8
    return v
  }

  mutating func take(_ count: Int) throws(ZipReadError) -> ArraySlice<UInt8> {
    guard count >= 0, remaining >= count else { throw .truncated }
    defer { position += count }
    return bytes[position..<(position + count)]
  }
}

/// Why a ZIP structure could not be parsed; turned into a one-line verification error by callers.
enum ZipReadError: Error {
  case truncated
  case malformed(String)

  var reason: String {
    switch self {
    case .truncated: "a ZIP record is cut short"
    case .malformed(let what): what
    }
  }
}
