import Crypto

extension Sequence where Element == UInt8 {
  /// Lowercase hexadecimal, as `sha256sum` prints it.
  public var hexString: String {
    var out = ""
    out.reserveCapacity(64)
    for byte in self {
      out.append(Character(Unicode.Scalar(hexDigits[Int(byte >> 4)])))
      out.append(Character(Unicode.Scalar(hexDigits[Int(byte & 0x0f)])))
    }
    return out
  }
}

private let hexDigits: [UInt8] = Array("0123456789abcdef".utf8)

extension SHA256Digest {
  public var hexString: String { Array(self).hexString }
}
