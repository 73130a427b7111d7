/// One HTTP byte range (RFC 9110 §14.1.2) of a file of known size: `bytes=a-`, `bytes=a-b` or
/// the suffix `bytes=-n`. The agent serves downloads with it; it reads a header a client sent,
/// so every input is checked before arithmetic.
public enum ByteRange {
  /// The range the part after `bytes=` asks for within `size` bytes, or nil when unsatisfiable.
  public static func parse(_ spec: String, size: UInt64) -> ClosedRange<UInt64>? {
    let parts = spec.split(separator: "-", omittingEmptySubsequences: false)
    guard parts.count == 2, size > 0 else { return nil }
    if parts[0].isEmpty {
      guard let suffix = UInt64(parts[1]), suffix > 0 else { return nil }
      return (size - min(suffix, size))...(size - 1)
    }
    guard let first = UInt64(parts[0]), first < size else { return nil }
    guard !parts[1].isEmpty else { return first...(size - 1) }
    guard let last = UInt64(parts[1]), last >= first else { return nil }
    return first...min(last, size - 1)
  }
}
