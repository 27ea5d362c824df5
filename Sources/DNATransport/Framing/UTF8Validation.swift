#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

extension String {
    /// The string whose UTF-8 encoding is `bytes`, or `nil` if they are not valid UTF-8.
    ///
    /// Names, keys and most values are ASCII: that is checked with a loop the compiler
    /// vectorises, and only other bytes go through the standard library's generic (and,
    /// per call, much slower) validation.
    package init?(validatingUTF8Bytes raw: UnsafeRawBufferPointer) {
        let bytes = raw.assumingMemoryBound(to: UInt8.self)
        var union: UInt8 = 0
        for byte in bytes { union |= byte }
        if union < 0x80 {
            self.init(decoding: bytes, as: UTF8.self)
        } else {
            guard let string = String(validating: bytes, as: UTF8.self) else { return nil }
            self = string
        }
    }
}

extension String {
    /// Whether both strings have the same UTF-8 bytes. Unlike `==`, which compares by
    /// canonical equivalence, this tells `"\u{212A}"` (the Kelvin sign) from `"K"`: names
    /// are compared as the bytes they are stored and checked as.
    package func hasSameUTF8(as other: String) -> Bool {
        var other = other
        return other.withUTF8 { hasUTF8(UnsafeRawBufferPointer($0)) }
    }

    /// Whether the string's UTF-8 encoding is exactly `bytes`.
    package func hasUTF8(_ bytes: UnsafeRawBufferPointer) -> Bool {
        var this = self
        return this.withUTF8 { own in
            own.count == bytes.count && (own.count == 0 || memcmp(own.baseAddress!, bytes.baseAddress!, own.count) == 0)
        }
    }
}
