#if canImport(Glibc)
    import Glibc
#endif

/// glibc's allocator, as far as a daemon that builds and frees million-entry sets needs it.
/// glibc gives each thread that allocates an arena of its own (64 MiB each) and keeps what is
/// freed there; the control plane's tasks move between threads, so a round's sets freed on
/// one arena while the next round's grow on another left vtepd holding memory it no longer
/// used (bench/macs: 700 MB at a million MACs). `malloc_trim` and `mallopt` live in malloc.h,
/// which Swift's Glibc module leaves out: they are looked up once by name.
public enum Allocator {
    /// At most `count` arenas (`mallopt(M_ARENA_MAX, count)`); call before threads allocate.
    public static func limitArenas(to count: Int32) {
        #if canImport(Glibc)
            // M_ARENA_MAX in malloc.h.
            if let mallopt = symbol("mallopt", as: (@convention(c) (Int32, Int32) -> Int32).self) {
                _ = mallopt(-8, count)
            }
        #endif
    }

    /// Blocks of `bytes` or more each mapped on their own (`mallopt(M_MMAP_THRESHOLD)`) and
    /// unmapped when freed. glibc otherwise raises that threshold to the size of the largest
    /// block freed (up to 32 MiB), after which the megabytes of a round's arrays come from the
    /// arena, and stay in it once freed while anything allocated later sits above them.
    public static func mapBlocks(from bytes: Int32) {
        #if canImport(Glibc)
            // M_MMAP_THRESHOLD in malloc.h.
            if let mallopt = symbol("mallopt", as: (@convention(c) (Int32, Int32) -> Int32).self) {
                _ = mallopt(-3, bytes)
            }
        #endif
    }

    /// Gives the pages freed in every arena back to the system (`malloc_trim(0)`).
    public static func trim() {
        #if canImport(Glibc)
            if let trim = symbol("malloc_trim", as: (@convention(c) (Int) -> Int32).self) {
                _ = trim(0)
            }
        #endif
    }

    #if canImport(Glibc)
        private static func symbol<F>(_ name: String, as type: F.Type) -> F? {
            guard let address = dlsym(UnsafeMutableRawPointer(bitPattern: 0), name) else {
                return nil
            }
            return unsafeBitCast(address, to: type)
        }
    #endif
}
