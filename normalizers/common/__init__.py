"""Shared text work of every normalizer: clean text, charsets and their plausibility,
HTML to text, phone numbers."""
