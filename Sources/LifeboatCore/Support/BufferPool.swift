import Synchronization

/// Large byte buffers handed back by the stage that is done with them, for the stage that fills
/// them to use again. A buffer of 256 KiB or more is an mmap of its own (`MemorySettings` sets
/// glibc's threshold there), so a fresh one costs a page fault and a zeroed page for every 4 KiB
/// written into it, and an munmap when freed: measured on a save, about a tenth of its CPU.
///
/// `take()` hands out the oldest buffer handed back, and only once `lag` newer ones were given
/// back after it: a buffer just given back may still be read by a later stage (an upload holds
/// one archive write), and an array still shared would be copied on its first change. A buffer
/// is never written while shared: an array still shared when it is emptied is left to its other
/// holder and a new one made, so a miss costs an allocation, never data.
public final class BufferPool: Sendable {
  /// The capacity every buffer handed out has at least.
  public let capacity: Int
  private let keep: Int
  private let lag: Int
  private let waiting = Mutex<[[UInt8]]>([])

  /// `keep`: how many buffers given back the pool holds at most (the rest are freed); `lag`: how
  /// many stages after the one giving buffers back may still read them.
  public init(capacity: Int, keep: Int, lag: Int = 0) {
    self.capacity = capacity
    self.lag = max(0, lag)
    self.keep = max(self.lag + 1, keep)
  }

  /// An empty buffer of at least `capacity` bytes: one handed back before, or a new one.
  public func take() -> [UInt8] {
    var buffer = waiting.withLock { $0.count > lag ? $0.removeFirst() : [] }
    buffer.removeAll(keepingCapacity: true)
    if buffer.capacity < capacity { buffer.reserveCapacity(capacity) }
    return buffer
  }

  /// Hands `buffer` back; its contents no longer matter to the caller.
  public func recycle(_ buffer: [UInt8]) {
    guard buffer.capacity >= capacity else { return }
    waiting.withLock { if $0.count < keep { $0.append(buffer) } }
  }

  /// How many buffers wait to be taken again.
  public var waitingCount: Int { waiting.withLock { $0.count } }
}
