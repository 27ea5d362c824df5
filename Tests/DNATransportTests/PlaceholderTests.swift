import Testing
@testable import DNATransport
