"""The running gateway: wiring (config to store, sinks, adapters, intake) and its HTTP
surface."""
