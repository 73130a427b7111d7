import Foundation

/// Writes a ZIP archive as a forward-only byte stream: nothing is ever patched, so the output
/// can go to a file and an upload at once. Entries carry a data descriptor (flag bit 3) after
/// their data; sizes of 4 GiB and more, and offsets past 4 GiB, switch the entry and the end
/// records to ZIP64. Read by `unzip`, Python's `zipfile`, ZIPFoundation and Go's `archive/zip`
/// (RKE).
///
/// The writer appends what it produces to the `out` buffer passed to each call; the caller
/// sends that buffer on (and may clear it) between calls.
public struct ZipWriter {
  /// Bytes produced so far: the offset of the next byte in the archive.
  public private(set) var offset: UInt64 = 0
  private var finished: [CentralEntry] = []
  private var open: OpenEntry?
  private var closed = false

  public init() {}

  /// Sizes and checksum of a finished entry.
  public struct EntrySummary: Sendable, Equatable {
    public var path: String
    public var crc32: UInt32
    public var compressedSize: UInt64
    public var uncompressedSize: UInt64
  }

  private struct CentralEntry {
    var path: [UInt8]
    var flags: UInt16
    var method: ZipCompressionMethod
    var dos: (time: UInt16, date: UInt16)
    var crc: UInt32
    var compressedSize: UInt64
    var uncompressedSize: UInt64
    var localHeaderOffset: UInt64
    var mode: UInt16
  }

  private struct OpenEntry {
    var central: CentralEntry
    var compressor: any Compressor
    var crc = CRC32()
    var dataStart: UInt64
  }

  /// Starts an entry; its data follows through `write`, then `finishEntry`.
  public mutating func startEntry(
    path: String, compression: Compression, modified: Date = Date(), mode: UInt16 = 0o600,
    into out: inout [UInt8]
  ) {
    precondition(open == nil && !closed, "ZipWriter: an entry is already open or the archive is finished")
    let name = Array(path.utf8)
    var flags = ZipFormat.flagDataDescriptor
    if name.contains(where: { $0 >= 0x80 }) { flags |= ZipFormat.flagUTF8 }
    let central = CentralEntry(
      path: name, flags: flags, method: compression.zipMethod, dos: ZipFormat.dosDateTime(modified),
      crc: 0, compressedSize: 0, uncompressedSize: 0, localHeaderOffset: offset, mode: mode)
    let before = out.count
    out.appendLE(ZipFormat.localHeaderSignature)
    out.appendLE(ZipFormat.versionDefault)
    out.appendLE(flags)
    out.appendLE(central.method.rawValue)
    out.appendLE(central.dos.time)
    out.appendLE(central.dos.date)
    out.appendLE(UInt32(0))  // crc-32: in the data descriptor
    out.appendLE(UInt32(0))  // compressed size: in the data descriptor
    out.appendLE(UInt32(0))  // uncompressed size: in the data descriptor
    out.appendLE(UInt16(name.count))
    out.appendLE(UInt16(0))
    out.append(contentsOf: name)
    offset += UInt64(out.count - before)
    open = OpenEntry(central: central, compressor: compression.makeCompressor(), dataStart: offset)
  }

  /// Adds uncompressed data to the open entry.
  public mutating func write(_ data: UnsafeRawBufferPointer, into out: inout [UInt8]) throws(LifeboatError) {
    precondition(open != nil, "ZipWriter: no open entry")
    open!.crc.update(data)
    open!.central.uncompressedSize += UInt64(data.count)
    let before = out.count
    try open!.compressor.compress(data, finish: false, into: &out)
    offset += UInt64(out.count - before)
  }

  /// Ends the open entry: flushes the compressor and writes the data descriptor.
  @discardableResult
  public mutating func finishEntry(into out: inout [UInt8]) throws(LifeboatError) -> EntrySummary {
    guard var entry = open else { preconditionFailure("ZipWriter: no open entry") }
    let before = out.count
    try entry.compressor.compress(UnsafeRawBufferPointer(start: nil, count: 0), finish: true, into: &out)
    offset += UInt64(out.count - before)
    entry.central.crc = entry.crc.value
    entry.central.compressedSize = offset - entry.dataStart
    let zip64 = entry.central.compressedSize >= ZipFormat.max32 || entry.central.uncompressedSize >= ZipFormat.max32
    let descriptorStart = out.count
    out.appendLE(ZipFormat.dataDescriptorSignature)
    out.appendLE(entry.central.crc)
    if zip64 {
      out.appendLE(entry.central.compressedSize)
      out.appendLE(entry.central.uncompressedSize)
    } else {
      out.appendLE(UInt32(entry.central.compressedSize))
      out.appendLE(UInt32(entry.central.uncompressedSize))
    }
    offset += UInt64(out.count - descriptorStart)
    finished.append(entry.central)
    open = nil
    return EntrySummary(
      path: String(decoding: entry.central.path, as: UTF8.self), crc32: entry.central.crc,
      compressedSize: entry.central.compressedSize, uncompressedSize: entry.central.uncompressedSize)
  }

  /// Adds a whole small entry at once.
  @discardableResult
  public mutating func addEntry(
    path: String, contents: [UInt8], compression: Compression, modified: Date = Date(), into out: inout [UInt8]
  ) throws(LifeboatError) -> EntrySummary {
    startEntry(path: path, compression: compression, modified: modified, into: &out)
    try contents.withBytes { (buffer) throws(LifeboatError) in try write(buffer, into: &out) }
    return try finishEntry(into: &out)
  }

  /// Writes the central directory and the end records. The archive is complete afterwards.
  public mutating func finish(into out: inout [UInt8]) {
    precondition(open == nil && !closed, "ZipWriter: finish with an open entry or twice")
    closed = true
    let directoryStart = offset
    let before = out.count
    for entry in finished {
      let sizes64 = entry.compressedSize >= ZipFormat.max32 || entry.uncompressedSize >= ZipFormat.max32
      let offset64 = entry.localHeaderOffset >= ZipFormat.max32
      var extra: [UInt8] = []
      if sizes64 || offset64 {
        var fields: [UInt8] = []
        if sizes64 {
          fields.appendLE(entry.uncompressedSize)
          fields.appendLE(entry.compressedSize)
        }
        if offset64 { fields.appendLE(entry.localHeaderOffset) }
        extra.appendLE(ZipFormat.zip64ExtraID)
        extra.appendLE(UInt16(fields.count))
        extra.append(contentsOf: fields)
      }
      let version = (sizes64 || offset64) ? ZipFormat.versionZip64 : ZipFormat.versionDefault
      out.appendLE(ZipFormat.centralHeaderSignature)
      out.appendLE(ZipFormat.madeByUnix | version)
      out.appendLE(version)
      out.appendLE(entry.flags)
      out.appendLE(entry.method.rawValue)
      out.appendLE(entry.dos.time)
      out.appendLE(entry.dos.date)
      out.appendLE(entry.crc)
      out.appendLE(sizes64 ? UInt32.max : UInt32(entry.compressedSize))
      out.appendLE(sizes64 ? UInt32.max : UInt32(entry.uncompressedSize))
      out.appendLE(UInt16(entry.path.count))
      out.appendLE(UInt16(extra.count))
      out.appendLE(UInt16(0))  // comment length
      out.appendLE(UInt16(0))  // disk number start
      out.appendLE(UInt16(0))  // internal attributes
      out.appendLE(UInt32(0o100000 | UInt32(entry.mode)) << 16)  // regular file, Unix mode
      out.appendLE(offset64 ? UInt32.max : UInt32(entry.localHeaderOffset))
      out.append(contentsOf: entry.path)
      out.append(contentsOf: extra)
    }
    let directorySize = UInt64(out.count - before)
    offset += directorySize
    let count = UInt64(finished.count)
    let needs64 = count >= ZipFormat.max16 || directorySize >= ZipFormat.max32 || directoryStart >= ZipFormat.max32
    let endStart = out.count
    if needs64 {
      let record64Offset = offset
      out.appendLE(ZipFormat.zip64EndOfCentralDirectorySignature)
      out.appendLE(UInt64(44))  // size of the rest of this record
      out.appendLE(ZipFormat.madeByUnix | ZipFormat.versionZip64)
      out.appendLE(ZipFormat.versionZip64)
      out.appendLE(UInt32(0))  // this disk
      out.appendLE(UInt32(0))  // disk with the central directory
      out.appendLE(count)
      out.appendLE(count)
      out.appendLE(directorySize)
      out.appendLE(directoryStart)
      out.appendLE(ZipFormat.zip64LocatorSignature)
      out.appendLE(UInt32(0))
      out.appendLE(record64Offset)
      out.appendLE(UInt32(1))  // total disks
    }
    out.appendLE(ZipFormat.endOfCentralDirectorySignature)
    out.appendLE(UInt16(0))
    out.appendLE(UInt16(0))
    out.appendLE(UInt16(min(count, ZipFormat.max16)))
    out.appendLE(UInt16(min(count, ZipFormat.max16)))
    out.appendLE(UInt32(min(directorySize, ZipFormat.max32)))
    out.appendLE(UInt32(min(directoryStart, ZipFormat.max32)))
    out.appendLE(UInt16(0))  // comment length
    offset += UInt64(out.count - endStart)
  }
}
