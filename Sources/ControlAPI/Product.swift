#if canImport(Glibc)
    import Glibc
#endif

/// The product's name and version, as vtepd and vtepsh report them (`show system`,
/// `show version`), and the running binary's build: its GNU build ID.
public enum Product {
    public static let name = "VTEP Gateway"
    public static let version = "0.1.0"

    /// The version and the first 12 hex digits of the running executable's GNU build ID
    /// (the linker's hash of the binary, as `file` and `readelf -n` show it): two builds of
    /// one version tell apart.
    public static var versionAndBuild: String {
        buildID.map { "\(version) (build \($0.prefix(12)))" } ?? version
    }

    /// The NT_GNU_BUILD_ID note of /proc/self/exe in hex; nil when it has none.
    public static let buildID: String? = readBuildID(path: "/proc/self/exe")

    /// Reads an ELF64 little-endian file's program headers and returns the GNU build ID note's
    /// descriptor in hex (elf(5): PT_NOTE segments, notes `namesz descsz type name desc`,
    /// name "GNU", type NT_GNU_BUILD_ID = 3).
    static func readBuildID(path: String) -> String? {
        guard let file = fopen(path, "rb") else { return nil }
        defer { fclose(file) }
        func read(_ offset: Int, _ count: Int) -> [UInt8]? {
            guard count >= 0, count < 1 << 20, fseek(file, offset, SEEK_SET) == 0 else {
                return nil
            }
            var bytes = [UInt8](repeating: 0, count: count)
            return fread(&bytes, 1, count, file) == count ? bytes : nil
        }
        func integer(_ bytes: [UInt8], _ at: Int, _ size: Int) -> Int {
            (0..<size).reduce(0) { $0 | Int(bytes[at + $1]) << (8 * $1) }
        }
        // ELF magic, 64-bit, little-endian.
        guard let header = read(0, 64), header[0..<4] == [0x7F, 0x45, 0x4C, 0x46],
            header[4] == 2, header[5] == 1
        else { return nil }
        let programHeaders = integer(header, 32, 8)
        let entrySize = integer(header, 54, 2)
        let count = integer(header, 56, 2)
        for index in 0..<count {
            guard let entry = read(programHeaders + index * entrySize, 56),
                integer(entry, 0, 4) == 4  // PT_NOTE
            else { continue }
            let offset = integer(entry, 8, 8)
            let size = integer(entry, 32, 8)
            guard let notes = read(offset, size) else { continue }
            var at = 0
            while at + 12 <= notes.count {
                let nameSize = integer(notes, at, 4)
                let descriptorSize = integer(notes, at + 4, 4)
                let type = integer(notes, at + 8, 4)
                let name = at + 12
                let descriptor = name + (nameSize + 3) & ~3
                guard descriptor + descriptorSize <= notes.count else { break }
                if type == 3, nameSize == 4, notes[name..<name + 3] == [0x47, 0x4E, 0x55] {
                    return notes[descriptor..<descriptor + descriptorSize].map { byte in
                        let hex = String(byte, radix: 16)
                        return hex.count == 1 ? "0" + hex : hex
                    }.joined()
                }
                at = descriptor + (descriptorSize + 3) & ~3
            }
        }
        return nil
    }
}
