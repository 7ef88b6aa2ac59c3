"""Routing hints at intake (issue 16): taxonomy, classifier, routing rules, due dates in
working days, and the weekly hot-spot report. Everything here is a hint for the case
platform: nothing in this package may block or delay intake (see ``hints``)."""
