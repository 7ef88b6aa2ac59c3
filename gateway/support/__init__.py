"""What every layer above the model shares: configuration, the registry of adapters,
normalizers and sinks, structured logs, the outbound HTTP client factory, secret
comparison and problem details."""
