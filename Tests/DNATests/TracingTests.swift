@testable import DNA
import Foundation
import InMemoryTracing
import DNATestSupport
import Testing
import Tracing

/// The process's one tracer (swift-distributed-tracing is bootstrapped once per process):
/// nodes made after the first use trace into it.
enum TestTracing {
    static let tracer: InMemoryTracer = {
        let tracer = InMemoryTracer(recordInjections: false, recordExtractions: false)
        InstrumentationSystem.bootstrap(tracer)
        return tracer
    }()
}

@Suite("Tracing", .integration, .serialized)
struct TracingTests {
    @Test func aCallToAnActorOnAnotherNodeIsOneTrace() async throws {
        let tracer = TestTracing.tracer
        guard let cluster = try await TestCluster.start(.sqlite, count: 2) else { return }
        let (a, b) = (cluster.nodes[0], cluster.nodes[1])
        #expect(a.tracer != nil)
        // Hosted on B.
        try await b.ref(Recorder.self, key: "traced").call(Recorder.Put(key: "first", value: "v"))
        let root = tracer.startSpan("test.root")
        try await InstrumentationContext.withValue(root.context) {
            try await a.ref(Recorder.self, key: "traced").call(Recorder.Put(key: "k", value: "v"))
        }
        root.end()
        let traceID = root.context.inMemorySpanContext?.traceID
        #expect(traceID != nil)
        // The commit span ends on the store's thread just before the reply: give it a moment.
        var spans: [FinishedInMemorySpan] = []
        for _ in 0..<100 {
            spans = tracer.finishedSpans.filter { $0.traceID == traceID }
            if spans.contains(where: { $0.operationName == "dna.commit" }) { break }
            try await Task.sleep(for: .milliseconds(10))
        }
        let names = spans.map(\.operationName)
        let call = spans.first { $0.operationName == "dna.call recorder" }
        let handle = spans.first { $0.operationName.hasPrefix("dna.handle ") && $0.operationName.hasSuffix("Put") }
        let commit = spans.first { $0.operationName == "dna.commit" }
        #expect(call != nil && handle != nil && commit != nil, "\(names)")
        // The handler ran on B as a child of A's call span: the context crossed the wire.
        #expect(call?.spanContext.parentSpanID == root.context.inMemorySpanContext?.spanID)
        #expect(handle?.spanContext.parentSpanID == call?.spanID)
        #expect(commit?.spanContext.parentSpanID == handle?.spanID)
        #expect(handle?.attributes["dna.node"]?.toSpanAttribute() == b.id.rawValue.toSpanAttribute())
        await cluster.shutdown()
    }

    @Test func aMalformedTraceContextIsIgnored() {
        let tracer = TestTracing.tracer
        #expect(TraceCarrier.decode("no equals sign here", with: tracer) == nil)
        #expect(TraceCarrier.decode("=value", with: tracer) == nil)
        #expect(TraceCarrier.decode("a=1\nb=2", with: tracer) != nil)
        let span = tracer.startSpan("test.encode")
        let text = TraceCarrier.encode(span.context, with: tracer)
        span.end()
        let decoded = TraceCarrier.decode(text, with: tracer)
        #expect(decoded?.inMemorySpanContext?.spanID == span.context.inMemorySpanContext?.spanID, "\(text)")
    }
}
