"""Dedup at intake: replays, exact duplicates, repeats, related complaints, hot topics."""
