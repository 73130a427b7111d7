import CISAL

/// CRC-32C (Castagnoli), as Go's `crc32.New(crc32.MakeTable(crc32.Castagnoli))` computes it:
/// etcd's snapshot hash. Through ISA-L's `crc32_iscsi`.
public struct CRC32C: Sendable, Equatable {
  /// ISA-L keeps the register un-inverted between calls; Go inverts on the way in and out.
  private var register: UInt32 = 0xFFFF_FFFF

  public init() {}

  public var value: UInt32 { register ^ 0xFFFF_FFFF }

  public mutating func update(_ bytes: UnsafeRawBufferPointer) {
    guard let base = bytes.baseAddress, bytes.count > 0 else { return }
    var offset = 0
    while offset < bytes.count {
      let n = min(bytes.count - offset, 1 << 30)
      register = crc32_iscsi(
        UnsafeMutablePointer(mutating: base.advanced(by: offset).assumingMemoryBound(to: UInt8.self)), Int32(n), register)
      offset += n
    }
  }

  public mutating func update(_ bytes: ArraySlice<UInt8>) {
    bytes.withUnsafeBytes { update($0) }
  }

  public static func checksum(_ bytes: [UInt8]) -> UInt32 {
    var crc = CRC32C()
    crc.update(bytes[...])
    return crc.value
  }
}
