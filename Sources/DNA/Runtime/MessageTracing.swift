import Logging
public import Tracing

/// The trace context a message carries, when the node traces (a swift-distributed-tracing
/// tracer was bootstrapped): one reference, so an envelope stays small when nothing is
/// traced.
@usableFromInline
final class MessageTrace: Sendable {
    let context: InstrumentationContext

    @usableFromInline
    init(_ context: InstrumentationContext) { self.context = context }
}

/// A trace context on the wire: the tracer's carrier as `key=value` lines (the tracer
/// chooses the keys: W3C `traceparent` for swift-otel).
enum TraceCarrier {
    struct Writer: Injector {
        func inject(_ value: String, forKey key: String, into carrier: inout [(String, String)]) {
            carrier.append((key, value))
        }
    }

    struct Reader: Extractor {
        func extract(key: String, from carrier: [(String, String)]) -> String? {
            carrier.first { $0.0 == key }?.1
        }
    }

    /// `context` as the tracer injects it; empty if it injects nothing or too much.
    static func encode(_ context: InstrumentationContext, with tracer: any Tracer) -> String {
        var carrier: [(String, String)] = []
        tracer.inject(context, into: &carrier, using: Writer())
        let lines = carrier.filter { key, value in
            !key.isEmpty && !key.contains("=") && !key.contains("\n") && !value.contains("\n")
        }.map { "\($0)=\($1)" }
        let text = lines.joined(separator: "\n")
        return text.utf8.count <= 4096 ? text : ""
    }

    /// The context `text` carries, or `nil` if it is not `key=value` lines.
    static func decode(_ text: String, with tracer: any Tracer) -> InstrumentationContext? {
        var carrier: [(String, String)] = []
        for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
            guard let equals = line.firstIndex(of: "="), equals != line.startIndex else { return nil }
            carrier.append((String(line[..<equals]), String(line[line.index(after: equals)...])))
        }
        var context = InstrumentationContext.topLevel
        tracer.extract(carrier, into: &context, using: Reader())
        return context
    }
}
