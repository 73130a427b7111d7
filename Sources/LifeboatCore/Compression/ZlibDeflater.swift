import SystemZlib

/// Raw Deflate through zlib, for `--compression best` (level 9).
public final class ZlibDeflater: Compressor {
  private let stream: UnsafeMutablePointer<z_stream>
  private let scratch: UnsafeMutableRawBufferPointer

  public init(level: Int32 = 9) {
    stream = .allocate(capacity: 1)
    stream.initialize(to: z_stream())
    scratch = .allocate(byteCount: 1 << 18, alignment: 16)
    // windowBits -15: raw Deflate without a zlib header, as ZIP wants it.
    let status = deflateInit2_(
      stream, level, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY, zlibVersion(), Int32(MemoryLayout<z_stream>.size))
    precondition(status == Z_OK, "zlib deflateInit2 failed: \(status)")
  }

  deinit {
    deflateEnd(stream)
    stream.deallocate()
    scratch.deallocate()
  }

  public func compress(_ input: UnsafeRawBufferPointer, finish: Bool, into output: inout [UInt8]) throws(LifeboatError) {
    stream.pointee.next_in = UnsafeMutablePointer(mutating: input.baseAddress?.assumingMemoryBound(to: Bytef.self))
    stream.pointee.avail_in = uInt(input.count)
    while true {
      stream.pointee.next_out = scratch.baseAddress!.assumingMemoryBound(to: Bytef.self)
      stream.pointee.avail_out = uInt(scratch.count)
      let status = deflate(stream, finish ? Z_FINISH : Z_NO_FLUSH)
      guard status == Z_OK || status == Z_STREAM_END || status == Z_BUF_ERROR else {
        throw .failure("zlib deflate failed with status \(status)")
      }
      let produced = scratch.count - Int(stream.pointee.avail_out)
      if produced > 0 {
        output.append(contentsOf: UnsafeRawBufferPointer(rebasing: scratch[0..<produced]))
      }
      if finish ? status == Z_STREAM_END : (stream.pointee.avail_in == 0 && stream.pointee.avail_out > 0) { break }
    }
  }
}
