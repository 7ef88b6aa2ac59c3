"""Where cases go: one module per sink kind, registered by name in gateway/support/registry.py."""
