import LifeboatCore
import Testing

@Suite struct BufferPoolTests {
  static func address(_ buffer: [UInt8]) -> UnsafeRawPointer? {
    buffer.withUnsafeBytes { $0.baseAddress }
  }

  @Test func aTakenBufferIsEmptyAndLargeEnough() {
    let pool = BufferPool(capacity: 300_000, keep: 3)
    let buffer = pool.take()
    #expect(buffer.isEmpty)
    #expect(buffer.capacity >= 300_000)
  }

  /// The oldest buffer given back comes out again, and with a lag of 1 only once another waits
  /// behind it (the newest may still be read by a later stage).
  @Test func theOldestGivenBackIsReusedWhileAnotherWaits() {
    let pool = BufferPool(capacity: 1 << 20, keep: 3, lag: 1)
    var first = pool.take()
    first.append(contentsOf: [UInt8](repeating: 7, count: 1000))
    let firstAddress = Self.address(first)
    pool.recycle(first)
    first = []
    let second = pool.take()
    #expect(Self.address(second) != firstAddress, "a lone buffer given back is not handed out")
    pool.recycle(second)
    let third = pool.take()
    #expect(Self.address(third) == firstAddress, "the oldest is reused")
    #expect(third.isEmpty && third.capacity >= 1 << 20)
    #expect(pool.waitingCount == 1)
  }

  /// Without a lag, the buffer given back is the next one out.
  @Test func withoutALagTheBufferGivenBackIsTheNextOut() {
    let pool = BufferPool(capacity: 1 << 20, keep: 2)
    var first = pool.take()
    first.append(contentsOf: [1, 2])
    let address = Self.address(first)
    pool.recycle(first)
    first = []
    let again = pool.take()
    #expect(Self.address(again) == address)
    #expect(again.isEmpty)
  }

  /// A buffer someone else still holds is never written: the holder keeps its bytes.
  @Test func aBufferStillHeldKeepsItsBytes() {
    let pool = BufferPool(capacity: 1 << 19, keep: 3)
    var a = pool.take()
    a.append(contentsOf: [1, 2, 3])
    let held = a
    pool.recycle(a)
    a = []
    var reused = pool.take()
    reused.append(contentsOf: [9, 9, 9, 9])
    #expect(held == [1, 2, 3])
    #expect(reused == [9, 9, 9, 9])
  }

  @Test func itKeepsAtMostKeepBuffersAndNoneTooSmall() {
    let pool = BufferPool(capacity: 1 << 18, keep: 3, lag: 1)
    let taken = (0..<5).map { _ in pool.take() }
    for buffer in taken { pool.recycle(buffer) }
    #expect(pool.waitingCount == 3, "the rest are freed")
    let small = BufferPool(capacity: 1 << 18, keep: 3)
    small.recycle([1, 2, 3])
    #expect(small.waitingCount == 0, "a buffer smaller than the pool's capacity is not kept")
  }
}
