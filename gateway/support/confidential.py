"""Confidential cases: the one function that hides a reporter's identity in an output.

A complaint with ``confidential: true`` (the citizen ticked "请为我保密", the agent's call
notes said so, or a confidential rule matched: docs/personal-data.md#confidential-cases)
leaves the gateway without its reporter's identity, except through the outputs set to
``confidential: full`` (a sink, or the pull API). Every output — the delivered body
(gateway/delivery/forwarder.py), ``GET /v1/cases`` and ``GET /v1/cases/{code}``, the
status page's clusters, the weekly report — shapes the stored document with
``mask_document`` here, so what "masked" means is decided once.

It works on the JSON document (a ``dict``) rather than the pydantic model: every output
already holds the stored JSON, and a masked document must stay a valid canonical
complaint (the identity fields are optional, so they become ``null``). Free text is
masked by the log masker (``mask_text``: phone numbers, ID-card and e-mail addresses in
any spelling) after the reporter's own name, number, address and handle are replaced
wherever they occur verbatim. The stored document is never changed.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any, Literal

from gateway.support.logging import mask_text

# What an output receives of a confidential case: everything, or the identity masked.
ConfidentialMode = Literal["full", "masked"]
CONFIDENTIAL_MODES: tuple[ConfidentialMode, ...] = ("full", "masked")
MASK = "***"
# Reporter fields that say who wrote; each becomes null.
IDENTITY_FIELDS = ("name", "phone", "email", "handle")
# Free-text fields of the complaint that may quote the reporter.
TEXT_FIELDS = ("subject", "body")
# A name shorter than this is not replaced in free text (one character would garble it).
MIN_NAME_CHARS = 2


def is_confidential(document: Any) -> bool:
    """Whether a complaint document (parsed JSON) is marked confidential."""
    return isinstance(document, dict) and document.get("confidential") is True


def mask_document(document: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``document`` without its reporter's identity when it is confidential
    (else ``document`` itself): the reporter's name, phone, e-mail and handle, the
    citizen's number of the call and the author of a post become null; the subject, the
    body, the address and the attachments' file names lose every occurrence of them and
    every phone, ID-card and e-mail address the log masker recognises."""
    if not is_confidential(document):
        return document
    masked = dict(document)
    identity = _identity_values(document)
    reporter = document.get("reporter")
    if isinstance(reporter, dict):
        masked["reporter"] = {**reporter, **{k: None for k in IDENTITY_FIELDS if k in reporter}}
    call = document.get("call")
    if isinstance(call, dict) and call.get(side := _citizen_side(call)) is not None:
        masked["call"] = {**call, side: None}
    post = document.get("post")
    if isinstance(post, dict) and post.get("author") is not None:
        masked["post"] = {**post, "author": None}
    for key in TEXT_FIELDS:
        if isinstance(document.get(key), str):
            masked[key] = mask_free_text(document[key], identity)
    location = document.get("location")
    if isinstance(location, dict) and isinstance(location.get("address"), str):
        masked["location"] = {**location,
                              "address": mask_free_text(location["address"], identity)}
    files = document.get("attachments")
    if isinstance(files, list):
        masked["attachments"] = [
            {**f, "file_name": mask_free_text(f["file_name"], identity)}
            if isinstance(f, dict) and isinstance(f.get("file_name"), str) else f
            for f in files]
    return masked


def mask_json(body: str) -> str:
    """``mask_document`` of a JSON text; anything not confidential comes back as is (the
    same bytes: a sink's signature and the receiver's de-duplication see no change)."""
    if '"confidential"' not in body:  # cheap test before parsing: the usual case
        return body
    try:
        document = json.loads(body)
    except ValueError:
        return body
    if not is_confidential(document):
        return body
    return json.dumps(mask_document(document), ensure_ascii=False, separators=(",", ":"))


def mask_free_text(text: str, identity: Iterable[str]) -> str:
    """``text`` with each of the ``identity`` values replaced, then run through the log
    masker (phone numbers, ID-card numbers, e-mail addresses in any spelling)."""
    for value in sorted(identity, key=len, reverse=True):  # a value may contain another
        if value in text:
            text = text.replace(value, MASK)
    return mask_text(text)


def masked_text_of(document: dict[str, Any], text: str) -> str:
    """A text taken from ``document`` (a snippet of its body), masked when the document
    is confidential: what a cluster or a report quotes of a confidential case."""
    if not is_confidential(document):
        return text
    return mask_free_text(text, _identity_values(document))


def _identity_values(document: dict[str, Any]) -> set[str]:
    """The reporter's identity as it may appear verbatim in free text."""
    values: set[str] = set()
    reporter = document.get("reporter")
    if isinstance(reporter, dict):
        values.update(str(reporter[k]) for k in IDENTITY_FIELDS if reporter.get(k))
    call = document.get("call")
    if isinstance(call, dict) and call.get(side := _citizen_side(call)):
        values.add(str(call[side]))
    post = document.get("post")
    if isinstance(post, dict) and post.get("author"):
        values.add(str(post["author"]))
    national = {v[3:] for v in values if v.startswith("+86")}  # as citizens type them
    return {v for v in values | national if len(v) >= MIN_NAME_CHARS}


def _citizen_side(call: dict[str, Any]) -> str:
    """The citizen's end of a call: the caller of an inbound call, the callee of an
    outbound one (the other end is the centre's line)."""
    return "callee" if call.get("direction") == "outbound" else "caller"
