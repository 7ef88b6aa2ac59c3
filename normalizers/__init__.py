"""One module per input format, plus shared text, phone and charset helpers."""
