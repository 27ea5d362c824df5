/// A message an actor handles, typed by the response it produces.
///
/// ```swift
/// struct Put: ActorRequest { typealias Response = Void; var key: String; var value: String }
/// struct Get: ActorRequest { typealias Response = String?; var key: String }
/// ```
///
/// Requests are `Codable` so the cluster can carry them between nodes; within one node
/// they are handed over as values, never encoded.
public protocol ActorRequest: Sendable, Codable {
    /// What ``ActorRef/call(_:)`` returns for this request.
    associatedtype Response: Sendable

    /// The name of the request type on the wire and in errors. Defaults to the type's
    /// fully qualified name.
    static var requestName: String { get }
}

extension ActorRequest {
    /// The type's fully qualified name, for example `MyApp.Put`.
    public static var requestName: String { String(reflecting: Self.self) }
}

/// When a handler's response (or error) is released to the caller.
public enum ReplyTiming: Sendable {
    /// After the commit of every write staged up to and including this message (the
    /// output gate). The default: a caller that got an answer can rely on it surviving a crash.
    case afterCommit
    /// At once, when the handler returns. Only for responses that depend on nothing
    /// unpersisted: for example a read of data committed by earlier batches. The
    /// original DNA's `:reply`.
    case immediate
}
