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
