"""Intake: the adapter contract, the pipeline (normalize, validate, dedup, code, commit),
the poller of pulled sources, source health and rate limits."""
