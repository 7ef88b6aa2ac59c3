"""One module per transport; registered by name in gateway/support/registry.py."""
