"""The phone hotline's formats: call records and events of each phone system, and the
agent's notes (one call, one complaint)."""
