import DNATransport
import Logging
import Synchronization

/// Measures the transport on loopback: two transports in this process, one echoing.
///
/// For `dna-bench`; not used by the runtime.
enum TransportBenchmark {
    /// What ``run(requests:payloadSize:latencySamples:window:)`` measured.
    struct Result: Sendable, CustomStringConvertible {
        /// Pipelined requests with replies (up to `window` outstanding) per second.
        package var requestsPerSecond: Double
        /// Median of sequential round trips (send, await the reply), in microseconds.
        package var p50Microseconds: Double
        /// 99th percentile of the sequential round trips, in microseconds.
        package var p99Microseconds: Double
        package var requests: Int
        package var payloadSize: Int

        package var description: String {
            let rate = Int(requestsPerSecond.rounded())
            return "\(requests) requests of \(payloadSize) B: \(rate) req/s pipelined; round trip p50 "
                + "\(Int(p50Microseconds.rounded())) µs, p99 \(Int(p99Microseconds.rounded())) µs"
        }
    }

    /// Runs `requests` pipelined requests of `payloadSize` bytes (each answered with the
    /// same payload), then `latencySamples` sequential round trips.
    ///
    /// Throws ``TransportError`` if the link fails.
    static func run(
        requests: Int = 200_000, payloadSize: Int = 32, latencySamples: Int = 2_000, window: Int = 20_000
    ) async throws -> Result {
        precondition(requests > 0 && latencySamples > 0 && window > 0)
        var logger = Logger(label: "dna.transport.bench")
        logger.logLevel = .warning
        let secret = Array("transport-benchmark-secret-0123456789".utf8)
        func configuration(_ nodeID: String) -> TransportConfiguration {
            var configuration = TransportConfiguration(cluster: "bench", nodeID: nodeID, secret: secret)
            configuration.logger = logger
            return configuration
        }
        let server = try ClusterTransport(configuration: configuration("bench-server"), delegate: EchoDelegate())
        let counter = ResponseCounter()
        let client = try ClusterTransport(configuration: configuration("bench-client"), delegate: counter)
        do {
            let port = try await server.start()
            let peer = PeerAddress(host: "127.0.0.1", port: port)
            let payload = [UInt8](repeating: 0x5a, count: payloadSize)
            func request(_ id: Int) -> WireRequest {
                WireRequest(
                    id: UInt64(id), expectsReply: true, hops: 0, namespace: "bench", kind: "kv", key: "key-\(id % 1000)",
                    requestName: "Get", payload: payload)
            }

            // Warm up: connect and authenticate.
            try client.send(request(0), to: peer)
            try await counter.wait(until: 1)

            let clock = ContinuousClock()
            let start = clock.now
            var sent = 0
            while sent < requests {
                let chunk = Swift.min(1_000, requests - sent)
                for _ in 0..<chunk {
                    sent += 1
                    try client.send(request(sent), to: peer)
                }
                if sent - (counter.received - 1) > window {
                    try await counter.wait(until: 1 + sent - window / 2)
                }
            }
            try await counter.wait(until: 1 + requests)
            let elapsed = start.duration(to: clock.now)
            let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18

            var samples: [Double] = []
            samples.reserveCapacity(latencySamples)
            for n in 0..<latencySamples {
                let before = clock.now
                try client.send(request(requests + 1 + n), to: peer)
                try await counter.wait(until: 2 + requests + n)
                let rtt = before.duration(to: clock.now)
                samples.append(Double(rtt.components.seconds) * 1e6 + Double(rtt.components.attoseconds) / 1e12)
            }
            samples.sort()
            await client.shutdown()
            await server.shutdown()
            return Result(
                requestsPerSecond: Double(requests) / seconds,
                p50Microseconds: samples[samples.count / 2],
                p99Microseconds: samples[Swift.min(samples.count - 1, samples.count * 99 / 100)],
                requests: requests, payloadSize: payloadSize)
        } catch {
            await client.shutdown()
            await server.shutdown()
            throw error
        }
    }
}

/// Answers every request with its own payload.
private final class EchoDelegate: ClusterTransportDelegate {
    func transport(didReceive request: WireRequest, sink: ResponseSink) {
        if request.expectsReply { sink.send(WireResponse(id: request.id, result: .success(request.payload))) }
    }
    func transport(didReceive response: WireResponse, from peer: PeerAddress) {}
    func transport(linkFailed failure: LinkFailure) {}
}

/// Counts responses; lets the benchmark await a count. A link failure fails the waiter.
private final class ResponseCounter: ClusterTransportDelegate {
    private struct State {
        var received = 0
        var failure: TransportError?
        var waiter: (target: Int, continuation: CheckedContinuation<Void, any Error>)?
    }

    private let state = Mutex(State())

    var received: Int { state.withLock { $0.received } }

    func wait(until target: Int) async throws {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            let outcome = state.withLock { state -> Result<Void, TransportError>? in
                if let failure = state.failure { return .failure(failure) }
                if state.received >= target { return .success(()) }
                state.waiter = (target, continuation)
                return nil
            }
            if let outcome { continuation.resume(with: outcome) }
        }
    }

    func transport(didReceive request: WireRequest, sink: ResponseSink) {}

    func transport(didReceive response: WireResponse, from peer: PeerAddress) {
        let ready = state.withLock { state -> CheckedContinuation<Void, any Error>? in
            state.received += 1
            guard let waiter = state.waiter, state.received >= waiter.target else { return nil }
            state.waiter = nil
            return waiter.continuation
        }
        ready?.resume()
    }

    func transport(linkFailed failure: LinkFailure) {
        let error = failure.error
        let waiter = state.withLock { state -> CheckedContinuation<Void, any Error>? in
            state.failure = error
            defer { state.waiter = nil }
            return state.waiter?.continuation
        }
        waiter?.resume(throwing: error)
    }
}
