#if canImport(Glibc)
import Glibc
#endif

// Built with `-D FUZZING -sanitize=fuzzer,address` (scripts/fuzz), `main`
// hands control to libFuzzer's driver, which calls this for every input; the
// target is chosen by FUSEBOX_FUZZ_TARGET. Built normally,
// `fusebox-fuzz TARGET FILE…` replays inputs once: how the corpus and past
// crashes run as regression tests.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    let target = getenv("FUSEBOX_FUZZ_TARGET").map { String(cString: $0) } ?? "protocol"
    FuzzTargets.run(target, UnsafeRawBufferPointer(start: data, count: data == nil ? 0 : size))
    return 0
}

#if FUZZING
@_silgen_name("LLVMFuzzerRunDriver")
func runFuzzerDriver(
    _ argc: UnsafeMutablePointer<Int32>, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>>,
    _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> Int32
) -> Int32

@main
enum FuzzDriver {
    static func main() {
        var argc = CommandLine.argc
        var argv = CommandLine.unsafeArgv
        exit(runFuzzerDriver(&argc, &argv) { data, size in fuzzOneInput(data, size) })
    }
}
#else
@main
enum ReplayMain {
    static func main() {
        let arguments = Array(CommandLine.arguments.dropFirst())
        guard let target = arguments.first, ["protocol", "config", "statefile"].contains(target) else {
            print("usage: fusebox-fuzz protocol|config|statefile FILE…   (replays inputs through a fuzz target)")
            exit(2)
        }
        var count = 0
        for path in arguments.dropFirst() {
            guard let file = fopen(path, "rb") else { continue }
            var bytes: [UInt8] = []
            var buffer = [UInt8](repeating: 0, count: 65_536)
            while true {
                let n = fread(&buffer, 1, buffer.count, file)
                bytes += buffer[0..<n]
                if n < buffer.count { break }
            }
            fclose(file)
            bytes.withUnsafeBytes { FuzzTargets.run(target, $0) }
            count += 1
        }
        print("fusebox-fuzz \(target): \(count) inputs replayed, no crash")
    }
}
#endif
