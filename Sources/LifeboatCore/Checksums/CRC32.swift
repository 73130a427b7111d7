import CISAL

/// The CRC-32 of ZIP and gzip (reflected IEEE 802.3), through ISA-L.
public struct CRC32: Sendable, Equatable {
  public private(set) var value: UInt32 = 0

  public init() {}

  public mutating func update(_ bytes: UnsafeRawBufferPointer) {
    guard let base = bytes.baseAddress, bytes.count > 0 else { return }
    var offset = 0
    // ISA-L takes a 64-bit length, but stay well inside any one call's limits.
    while offset < bytes.count {
      let n = min(bytes.count - offset, 1 << 30)
      value = crc32_gzip_refl(value, base.advanced(by: offset).assumingMemoryBound(to: UInt8.self), UInt64(n))
      offset += n
    }
  }

  public static func checksum(_ bytes: some Collection<UInt8>) -> UInt32 {
    var crc = CRC32()
    Array(bytes).withUnsafeBytes { crc.update($0) }
    return crc.value
  }
}
