
/// How the etcd snapshot entry of an archive is compressed.
public enum Compression: String, Sendable, CaseIterable, Codable {
  /// ISA-L Deflate level 1: the default; costs almost nothing next to etcd's stream.
  case fast
  /// libdeflate level 6 on every core (`ParallelDeflater`): archives about 17% smaller than
  /// `fast`'s (and than zlib level 9's), for about 4x its CPU.
  case best
  /// A stored (uncompressed) entry.
  case none

  /// A new compressor for one entry.
  public func makeCompressor() -> any Compressor {
    switch self {
    case .fast: ISALDeflater(level: 1)
    case .best: ParallelDeflater()
    case .none: StoredCompressor()
    }
  }

  /// The ZIP compression method this produces.
  public var zipMethod: ZipCompressionMethod { self == .none ? .stored : .deflate }
}

/// A streaming compressor for one ZIP entry. Not thread-safe; one entry per instance.
public protocol Compressor: AnyObject {
  /// Compresses `input` and appends whatever output is ready to `output`. With `finish`, the
  /// stream is ended and all remaining output is appended; the compressor is not used again.
  func compress(_ input: UnsafeRawBufferPointer, finish: Bool, into output: inout [UInt8]) throws(LifeboatError)
}

/// Compressor for stored entries: copies its input.
public final class StoredCompressor: Compressor {
  public init() {}
  public func compress(_ input: UnsafeRawBufferPointer, finish: Bool, into output: inout [UInt8]) {
    output.append(contentsOf: input)
  }
}
