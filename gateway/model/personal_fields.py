"""Which fields of a case document are personal, and the document without them.

What stays is what the gateway still needs once the case platform holds the case
(docs/personal-data.md#what-is-kept-where-for-how-long): the case code, channel, source,
source reference, times, the dedup decision (the fingerprints themselves live in the
dedup index, not here), routing hints (classification, rule, department, priority, due
date), district and street codes, tags, the call's times and disposition and the site a
public post appeared on. These say nothing about who wrote.

Personal, and removed: the reporter's name, phone, e-mail and handle; subject and body
(free text: citizens write names, ID-card numbers and addresses into it); the address and
exact coordinates; the attachments (file names and the files); the caller number and
recording of a call; the author of a public post. ``category_hint`` is kept (a category
name chosen from a list).
"""

from __future__ import annotations

import json
from typing import Any

REPORTER_KEPT = ("anonymous", "reply_wanted")
LOCATION_KEPT = ("district_code", "street_code")
CALL_REMOVED = ("caller", "recording_ref")
POST_REMOVED = ("author",)


def strip_document(document: dict[str, Any]) -> dict[str, Any]:
    """A copy of a case document (a dumped ``Complaint``) without its personal fields; it
    still parses as a ``Complaint`` (text fields become empty strings)."""
    stripped = dict(document)
    reporter = stripped.get("reporter")
    if isinstance(reporter, dict):
        stripped["reporter"] = {k: v for k, v in reporter.items() if k in REPORTER_KEPT}
    stripped["subject"] = ""
    stripped["body"] = ""
    location = stripped.get("location")
    if isinstance(location, dict):
        stripped["location"] = {k: v for k, v in location.items() if k in LOCATION_KEPT}
    stripped["attachments"] = []
    for key, removed in (("call", CALL_REMOVED), ("post", POST_REMOVED)):
        part = stripped.get(key)
        if isinstance(part, dict):
            stripped[key] = {k: (None if k in removed else v) for k, v in part.items()}
    return stripped


def strip_document_text(text: str) -> str:
    """``strip_document`` on the stored JSON text; text that is not an object is replaced
    by an empty object (it cannot be told apart from personal content)."""
    try:
        parsed = json.loads(text)
    except ValueError:
        return "{}"
    if not isinstance(parsed, dict):
        return "{}"
    return json.dumps(strip_document(parsed), ensure_ascii=False)
