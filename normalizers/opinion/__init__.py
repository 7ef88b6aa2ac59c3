"""Public opinion: feed entries and web pages (site definitions, generic article
extraction, relevance)."""
