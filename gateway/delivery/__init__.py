"""Delivery: the forwarder drains the outbox into the sinks, at least once."""
