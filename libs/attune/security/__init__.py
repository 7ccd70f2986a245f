"""The trust boundary's shared pieces (see docs/architecture.md): TLS material and transport
(`certificates` makes it, `tls` loads it and builds gRPC credentials), the caller's service
identity from its certificate (`identity`), secrets sealed at rest and masked in output
(`sealing`, `masking`)."""
