/// Keeps a long stream's resident memory flat. glibc raises its mmap threshold each time a
/// large block is freed, after which the save's 1 MiB buffers come from per-thread heaps that
/// fragment; a fixed threshold returns them to the system when freed, and two arenas are
/// plenty for this process.
enum MemorySettings {
  static func apply() {
    #if os(Linux)
    _ = glibcMallopt(mmapThreshold, 256 << 10)
    _ = glibcMallopt(arenaMax, 2)
    #endif
  }
}

#if os(Linux)
// <malloc.h> is not part of Swift's Glibc module; these are glibc's values.
private let mmapThreshold: Int32 = -3  // M_MMAP_THRESHOLD
private let arenaMax: Int32 = -8  // M_ARENA_MAX

@_silgen_name("mallopt")
private func glibcMallopt(_ parameter: Int32, _ value: Int32) -> Int32
#endif
