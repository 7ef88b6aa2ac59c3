"""What a delivery carries of a case's attachments, per sink (``attachments:``).

A case lists its attachments as ``storage_ref: sha256:<hex>``, which means nothing
outside the gateway. Each sink says what its platform gets instead:

- ``link`` (default): ``storage_ref`` becomes the absolute URL of
  ``GET /v1/attachments/{sha256}`` under ``api.public_url`` (the platform fetches the
  bytes with the pull API's token). Without ``api.public_url`` it stays ``sha256:<hex>``.
- ``inline``: the bytes go along as ``content_base64`` for attachments up to
  ``attachments_inline_max_kb``; larger ones (or bytes no longer on disk) are linked.
- ``omit``: the list is emptied (a platform that must not receive citizens' files).

The forwarder shapes every batch with this one helper before any sink sees it, so every
sink kind (those to come too) behaves the same; the stored case document never changes.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import json
from collections.abc import Sequence
from typing import Any

from gateway.model.attachments import AttachmentStore
from gateway.store.outbox import Delivery
from gateway.support.config import AttachmentMode, SinkConfig

ATTACHMENT_ROUTE = "/v1/attachments/"


class AttachmentShaper:
    """Rewrites the attachment list of each delivery for the sink's ``attachments`` mode."""

    def __init__(self, files: AttachmentStore, public_url: str | None) -> None:
        self.files = files
        self.public_url = public_url.rstrip("/") if public_url else None

    def link(self, sha256: str) -> str | None:
        """The absolute URL the bytes are served at, or None without ``api.public_url``."""
        return f"{self.public_url}{ATTACHMENT_ROUTE}{sha256}" if self.public_url else None

    async def shape(self, config: SinkConfig, batch: Sequence[Delivery]) -> list[Delivery]:
        """The batch as the sink ``config`` is to receive it (same entries, same order)."""
        if not any(_lists_attachments(d.body) for d in batch):
            return list(batch)
        if config.attachments == "inline":  # reads files: off the event loop
            return await asyncio.to_thread(self._shape_all, config, batch)
        return self._shape_all(config, batch)

    def _shape_all(self, config: SinkConfig, batch: Sequence[Delivery]) -> list[Delivery]:
        return [self._shape_one(config, d) for d in batch]

    def _shape_one(self, config: SinkConfig, delivery: Delivery) -> Delivery:
        if not _lists_attachments(delivery.body):
            return delivery
        document: Any = json.loads(delivery.body)
        items = document.get("attachments") if isinstance(document, dict) else None
        if not isinstance(items, list) or not items:
            return delivery
        limit = config.attachments_inline_max_kb * 1024
        document["attachments"] = [
            shaped for item in items
            if (shaped := self._item(config.attachments, item, limit)) is not None
        ]
        body = json.dumps(document, ensure_ascii=False, separators=(",", ":"))
        return dataclasses.replace(delivery, body=body)

    def _item(self, mode: AttachmentMode, item: Any, inline_limit: int) -> Any:
        """One attachment entry for ``mode``; None drops it."""
        if mode == "omit":
            return None
        if not isinstance(item, dict) or not isinstance(item.get("sha256"), str):
            return item
        shaped = dict(item)
        if mode == "inline" and 0 <= int(item.get("size") or 0) <= inline_limit:
            content = self._read(item["sha256"])
            if content is not None:
                shaped["content_base64"] = base64.b64encode(content).decode("ascii")
                return shaped
        if (url := self.link(item["sha256"])) is not None:
            shaped["storage_ref"] = url
        return shaped

    def _read(self, sha256: str) -> bytes | None:
        """The bytes, or None when they are not (or no longer) on disk: linked instead."""
        try:
            return self.files.read(sha256)
        except (OSError, ValueError):
            return None


def _lists_attachments(body: str) -> bool:
    """Cheap test before parsing: a document without attachments has no ``storage_ref``."""
    return '"storage_ref"' in body
