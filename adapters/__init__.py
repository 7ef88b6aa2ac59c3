"""One module per transport; registered by name in gateway/registry.py."""
