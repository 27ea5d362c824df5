import DNATransport

/// The answer to a request that came from another node: encoded and sent back on the
/// connection the request arrived on.
@usableFromInline
final class RemoteReply: Sendable {
    let sink: ResponseSink
    let requestID: UInt64
    let encode: @Sendable (any Sendable) throws(DNAError) -> [UInt8]

    init(sink: ResponseSink, requestID: UInt64, encode: @escaping @Sendable (any Sendable) throws(DNAError) -> [UInt8]) {
        self.sink = sink
        self.requestID = requestID
        self.encode = encode
    }

    func send(_ result: Result<any Sendable, any Error>) {
        switch result {
        case .success(let value):
            do {
                sendEncoded(.success(try encode(value)))
            } catch {
                sendEncoded(.failure(WireError(error)))
            }
        case .failure(let error):
            sendEncoded(.failure(WireError(error)))
        }
    }

    /// Passes on an answer that is already encoded (from the node a request was forwarded to).
    func sendEncoded(_ result: Result<[UInt8], WireError>) {
        sink.send(WireResponse(id: requestID, result: result))
    }
}

extension WireError {
    /// An error as the caller's node will see it: a ``DNAError`` keeps its code; any other
    /// error (one a handler threw) becomes ``DNAError/Code/handlerFailed`` with its description.
    init(_ error: any Error) {
        if let error = error as? DNAError {
            self.init(code: error.code.name, message: error.message, retryable: error.isRetryable)
        } else {
            self.init(code: DNAError.Code.handlerFailed.name, message: String(describing: error), retryable: false)
        }
    }
}

extension DNAError {
    /// The error a remote node answered with.
    init(_ wire: WireError) {
        self.init(Code(wire.code), wire.message, underlying: wire)
    }
}
