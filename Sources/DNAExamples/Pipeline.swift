import DNA

/// The example pipeline: device readings → totals per device → totals per city.
///
/// A reading is a record of the stream `readings`, keyed by its device, valued
/// `"<city>:<amount>"`. ``DeviceTotals`` keeps each device's count and sum and forwards the
/// amount to the stream `city-readings`, keyed by the city; ``CityTotals`` keeps each
/// city's count and sum. Each stage's state, its output and its checkpoint commit
/// together, so the totals are exact across node failures. `dna-bench pipeline-demo` runs it.
public enum ExamplePipeline {
    public static let readings = StreamName(name: "readings")
    public static let cityReadings = StreamName(name: "city-readings")
    public static let readingPartitions = 8
    public static let cityPartitions = 4

    /// A reading's record value.
    public static func reading(city: String, amount: Int64) -> [UInt8] { Array("\(city):\(amount)".utf8) }

    static func parse(_ value: [UInt8]) -> (city: String, amount: Int64)? {
        let text = String(decoding: value, as: UTF8.self)
        guard let colon = text.lastIndex(of: ":"), let amount = Int64(text[text.index(after: colon)...]) else { return nil }
        return (String(text[..<colon]), amount)
    }

    /// A count and a sum.
    public struct Total: Codable, Sendable, Equatable {
        public var count: Int64
        public var sum: Int64
        public init(count: Int64 = 0, sum: Int64 = 0) {
            self.count = count
            self.sum = sum
        }
    }

    /// The totals a stage consumer holds (ask each partition's consumer and add them up).
    public struct Totals: ActorRequest {
        public typealias Response = [String: Total]
        public init() {}
    }

    /// A reading that cannot be parsed.
    public struct BadReading: Error, CustomStringConvertible {
        public var value: String
        public var description: String { "not a reading '<city>:<amount>': \(value)" }
    }
}

/// Stage one: totals per device, forwarding each amount to its city's partition.
public final class DeviceTotals: StreamStage {
    public static let kind: ActorKind = "device-totals"
    public static let input = ExamplePipeline.readings
    let totals: KV<String, ExamplePipeline.Total>

    public init(context: ActorContext) async throws { totals = try context.kv("totals") }

    public static func handlers(_ h: inout Handlers<DeviceTotals>) {
        h.on(ExamplePipeline.Totals.self) { stage, _, _ in try stage.totals.allEntries() }
    }

    public func process(_ records: [StreamRecord], context: ActorContext) async throws {
        for record in records {
            guard let reading = ExamplePipeline.parse(record.value) else {
                throw ExamplePipeline.BadReading(value: String(decoding: record.value, as: UTF8.self))
            }
            let device = String(decoding: record.key, as: UTF8.self)
            var total = totals.read(device) ?? ExamplePipeline.Total()
            total.count += 1
            total.sum += reading.amount
            try totals.write(total, for: device)
            try context.append(to: ExamplePipeline.cityReadings, key: reading.city, value: Array(String(reading.amount).utf8))
        }
    }
}

/// Stage two: totals per city.
public final class CityTotals: StreamStage {
    public static let kind: ActorKind = "city-totals"
    public static let input = ExamplePipeline.cityReadings
    let totals: KV<String, ExamplePipeline.Total>

    public init(context: ActorContext) async throws { totals = try context.kv("totals") }

    public static func handlers(_ h: inout Handlers<CityTotals>) {
        h.on(ExamplePipeline.Totals.self) { stage, _, _ in try stage.totals.allEntries() }
    }

    public func process(_ records: [StreamRecord], context: ActorContext) async throws {
        for record in records {
            let city = String(decoding: record.key, as: UTF8.self)
            guard let amount = Int64(String(decoding: record.value, as: UTF8.self)) else {
                throw ExamplePipeline.BadReading(value: String(decoding: record.value, as: UTF8.self))
            }
            var total = totals.read(city) ?? ExamplePipeline.Total()
            total.count += 1
            total.sum += amount
            try totals.write(total, for: city)
        }
    }
}

extension KV where Key == String {
    /// Every entry, as a dictionary.
    func allEntries() throws(DNAError) -> [String: Value] {
        var result: [String: Value] = [:]
        var after: String?
        while true {
            let page = try list(after: after, limit: 1000)
            for (key, value) in page { result[key] = value }
            guard page.count == 1000 else { return result }
            after = page.last?.key
        }
    }
}
