import CISAL

/// Raw Inflate through ISA-L, for reading archives back.
public final class ISALInflater {
  private let state: UnsafeMutablePointer<inflate_state>
  private let scratch: UnsafeMutableRawBufferPointer
  public private(set) var finished = false
  /// Input bytes given after the Deflate stream ended (an entry whose recorded compressed size
  /// is larger than its stream). ISA-L may hold up to 8 of them in its bit buffer, so a few
  /// can go uncounted; none is ever counted that belonged to the stream.
  public private(set) var trailing = 0

  public init() {
    state = .allocate(capacity: 1)
    state.initialize(to: inflate_state())
    isal_inflate_init(state)
    state.pointee.crc_flag = UInt32(ISAL_DEFLATE)
    scratch = .allocate(byteCount: 1 << 18, alignment: 64)
  }

  deinit {
    state.deallocate()
    scratch.deallocate()
  }

  /// Inflates `input`, handing each piece of output to `emit`. Returns when the input is used
  /// up or the Deflate stream has ended (`finished`); input after the end is ignored.
  public func inflate(
    _ input: UnsafeRawBufferPointer, emit: (UnsafeRawBufferPointer) throws(LifeboatError) -> Void
  ) throws(LifeboatError) {
    if finished {
      trailing += input.count
      return
    }
    state.pointee.next_in = UnsafeMutablePointer(mutating: input.baseAddress?.assumingMemoryBound(to: UInt8.self))
    state.pointee.avail_in = UInt32(input.count)
    while !finished {
      state.pointee.next_out = scratch.baseAddress!.assumingMemoryBound(to: UInt8.self)
      state.pointee.avail_out = UInt32(scratch.count)
      let status = isal_inflate(state)
      guard status >= 0 else { throw .verification("the compressed data is corrupt (inflate error \(status))") }
      let produced = scratch.count - Int(state.pointee.avail_out)
      if produced > 0 { try emit(UnsafeRawBufferPointer(rebasing: scratch[0..<produced])) }
      if state.pointee.block_state == ISAL_BLOCK_FINISH { finished = true }
      if state.pointee.avail_in == 0 && state.pointee.avail_out > 0 { break }
    }
    if finished { trailing += Int(state.pointee.avail_in) }
  }
}
