@_exported import DNAStore
