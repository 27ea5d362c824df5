@_exported import DNAStore
@_exported import struct DNATransport.PeerAddress
@_exported import struct DNATransport.TransportError
@_exported import protocol DNATransport.TransportSecurity
@_exported import protocol DNATransport.ConnectionSecurity
