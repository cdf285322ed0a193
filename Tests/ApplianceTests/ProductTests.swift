import Foundation
import Testing

@testable import ControlAPI

/// The running binary's build ID, as binutils' `readelf -n` reads it.
@Suite struct ProductTests {
    @Test func theBuildIDIsTheOneReadelfReports() throws {
        let id = try #require(Product.readBuildID(path: "/proc/self/exe"))
        #expect(id.count >= 16 && id.allSatisfy(\.isHexDigit), "\(id)")
        let readelf = ["/usr/bin/readelf", "/bin/readelf"].first {
            FileManager.default.isExecutableFile(atPath: $0)
        }
        let path = try #require(readelf, "binutils' readelf is not installed")
        let process = Process()
        process.executableURL = URL(fileURLWithPath: path)
        // This test binary, by name: /proc/self/exe in readelf would be readelf.
        process.arguments = [
            "-n", try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe"),
        ]
        let pipe = Pipe()
        process.standardOutput = pipe
        try process.run()
        let text = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        #expect(text.contains("Build ID: \(id)"), "\(text)")
        #expect(Product.versionAndBuild.hasPrefix(Product.version + " (build "))
        // Not an ELF file: no build ID, no trap.
        #expect(Product.readBuildID(path: "/etc/hostname") == nil)
    }
}
