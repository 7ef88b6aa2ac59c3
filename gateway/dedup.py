"""Recognising the same item again (a replay) by the keys it carries.

A replay is the same source with the same ``source_ref`` (a retried webhook, a mail
fetched twice) or the same ``Idempotency-Key``: nothing new is created and the existing
case code is returned. The keys are rows in the store, so replicas agree.
"""

from __future__ import annotations

from gateway.schema import ComplaintDraft, RawRecord


def replay_keys(raw: RawRecord, draft: ComplaintDraft) -> list[str]:
    """The keys under which this item is filed: its source_ref (as the normalizer read it:
    a web form's ``submission_id``, a mail's Message-ID) and the Idempotency-Key."""
    keys = [f"ref:{draft.source_ref}"]
    if raw.idempotency_key:
        keys.append(f"idem:{raw.idempotency_key}")
    return keys
