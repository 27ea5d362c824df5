#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Writes a target's seed inputs into the folder named by `DNA_FUZZ_WRITE_SEEDS` and exits,
/// if that variable is set; otherwise does nothing. Called from `LLVMFuzzerInitialize`, so
/// `DNA_FUZZ_WRITE_SEEDS=Fuzz/seeds/frame .build/release/FuzzFrameDecoder` regenerates the
/// committed seeds from the real encoders.
public func writeSeedsIfAsked(_ seeds: () -> [(name: String, bytes: [UInt8])]) {
    guard let folder = getenv("DNA_FUZZ_WRITE_SEEDS").map({ String(cString: $0) }) else { return }
    mkdir(folder, 0o755)
    let seeds = seeds()
    for seed in seeds {
        let path = folder + "/" + seed.name
        guard let file = fopen(path, "wb") else {
            perror(path)
            exit(1)
        }
        _ = seed.bytes.withUnsafeBytes { fwrite($0.baseAddress, 1, $0.count, file) }
        fclose(file)
    }
    print("wrote \(seeds.count) seeds to \(folder)")
    exit(0)
}
