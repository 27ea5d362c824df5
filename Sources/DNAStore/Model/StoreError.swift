/// An error from a store, with a stable ``Code``.
public struct StoreError: Error, Sendable, CustomStringConvertible, Equatable {
    /// A stable error code; new codes may be added.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        /// The code's name; codes of the same name are equal.
        public let name: String
        /// The code named `name`.
        public init(_ name: String) { self.name = name }
        /// The code's name.
        public var description: String { name }

        /// The activation lost its name: another owner or a newer epoch holds it. Retryable.
        public static let fenced = Code("fenced")
        /// The batch before this one (of the same registration) is not committed: it failed
        /// and must be committed first. Retryable, after its predecessor.
        public static let predecessorMissing = Code("predecessorMissing")
        /// The operation may or may not have been applied: the store's answer was lost (the
        /// connection broke, or the deadline passed, after it was sent). Retrying the same
        /// batch is safe: the store applies a batch once, and answers a batch it already
        /// applied with success.
        public static let outcomeUnknown = Code("outcomeUnknown")
        /// The database could not do it now (locked, busy, I/O error, full, read-only,
        /// gone away). Retryable.
        public static let unavailable = Code("unavailable")
        /// The file is not a DNA database (another application's data, or not a database).
        public static let notADNADatabase = Code("notADNADatabase")
        /// The database is damaged.
        public static let corrupt = Code("corrupt")
        /// The database was written by a newer version of DNA.
        public static let schemaTooNew = Code("schemaTooNew")
        /// An actor name breaks the naming rules of ``ActorID``.
        public static let invalidName = Code("invalidName")
        /// Another node process holds the embedded database in exclusive mode.
        public static let inUse = Code("inUse")
        /// The store was closed.
        public static let closed = Code("closed")
        /// The caller asked for something the store cannot do (a programming error).
        public static let invalidArgument = Code("invalidArgument")
        /// What was named does not exist (a stream, a partition).
        public static let notFound = Code("notFound")
    }

    /// What went wrong, stably: match on this.
    public var code: Code
    /// What failed and why, for people; its wording may change.
    public var message: String

    /// An error of `code`, with `message` for people.
    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    /// Whether trying the same thing again later may succeed.
    public var isRetryable: Bool {
        code == .fenced || code == .unavailable || code == .predecessorMissing || code == .outcomeUnknown
    }

    /// The code and the message: `StoreError.fenced: …`.
    public var description: String { "StoreError.\(code): \(message)" }
}
