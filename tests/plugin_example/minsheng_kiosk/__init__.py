"""Example plugin: a service-hall kiosk adapter and a CSV sink, registered by entry points."""
