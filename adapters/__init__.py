"""One folder (or module) per channel: its transport and what only it needs (the phone
call flow, site definitions, their CLI commands); registered by name in
gateway/support/registry.py."""
