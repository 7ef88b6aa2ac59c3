"""What the citizen page's tests share: a gateway whose web mailbox serves the page, the
page's form read with lxml, and a small real PNG (a photo to attach)."""

from __future__ import annotations

import struct
import zlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import lxml.html

from gateway.server.app import Gateway
from tests.conftest import gateway_config

GOOD = {"content": "小区门口共享单车堆放严重，影响通行。", "subject": "共享单车乱停放",
        "name": "黄女士", "phone": "13800138000", "address": "城阳区正阳路"}
BROWSER_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"


@asynccontextmanager
async def page_gateway(tmp_path: Path, **web: Any) -> AsyncIterator[Gateway]:
    """A gateway on SQLite (the page adds no SQL of its own) whose ``web`` source has
    ``web`` as extra options."""
    source = {"name": "web", "adapter": "web_mailbox", "csrf_secret": "test-csrf-key", **web}
    gw = Gateway(gateway_config(tmp_path, f"sqlite:///{tmp_path / 'g.db'}", sources=[source]))
    await gw.start()
    try:
        yield gw
    finally:
        await gw.stop()


def form_values(html: str) -> dict[str, str]:
    """The hidden and text values of the page's form, by name."""
    doc = lxml.html.fromstring(html)
    form = doc.get_element_by_id("mailbox")
    found = {i.get("name"): i.get("value") or "" for i in form.iter("input")
             if i.get("type") in ("hidden", "text", "tel", "email")}
    found.update({t.get("name"): t.text or "" for t in form.iter("textarea")})
    return found


def field_error(html: str, field: str) -> str:
    """The error shown beside ``field`` (empty when none)."""
    doc = lxml.html.fromstring(html)
    return str(doc.get_element_by_id(f"err-{field}").text_content()).strip()


def png(width: int = 48, height: int = 32) -> bytes:
    """A real PNG (a red-blue gradient): what a phone's photo would be, small."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))
    rows = b"".join(b"\x00" + bytes(c for x in range(width)
                                    for c in (255 * x // width, 80, 255 * y // height))
                    for y in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows))
            + chunk(b"IEND", b""))
