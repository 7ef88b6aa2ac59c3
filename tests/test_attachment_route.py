"""``GET /v1/attachments/{sha256}`` through the real HTTP endpoint, on both engines: the
bytes of an attachment a stored case lists, with Range requests, the recorded type, a
download name, and refusals as problem+json."""

from __future__ import annotations

import hashlib
from urllib.parse import unquote

import httpx
import pytest

from gateway.model.attachments import AttachmentStore
from gateway.server.app import Gateway
from gateway.server.attachment_route import content_disposition, safe_media_type
from gateway.store import Tx, attachment_index
from gateway.store.migrations import BACKFILLS, migrate
from tests.conftest import base_url

AUTH = {"Authorization": "Bearer test-api-token"}
PHOTO = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4
INDEX_VERSION = next(v for v, fill in BACKFILLS.items() if fill is attachment_index.backfill)
FORM = {"name": "赵", "phone": "13900139000", "content": "垃圾未清运，请尽快处理"}


async def _file_case(gw: Gateway, name: str = "现场 照片.png") -> str:
    async with httpx.AsyncClient(base_url=base_url(gw)) as client:
        response = await client.post("/intake/web", data=FORM,
                                     files=[("photo", (name, PHOTO, "image/png"))])
    assert response.status_code == 202, response.text
    return hashlib.sha256(PHOTO).hexdigest()


async def test_serves_the_bytes_of_a_case_attachment(gateway: Gateway) -> None:
    digest = await _file_case(gateway)
    async with httpx.AsyncClient(base_url=base_url(gateway)) as client:
        response = await client.get(f"/v1/attachments/{digest}", headers=AUTH)
    assert response.status_code == 200
    assert response.content == PHOTO
    assert response.headers["content-type"] == "image/png"
    assert response.headers["x-content-type-options"] == "nosniff"
    disposition = response.headers["content-disposition"]
    assert disposition.startswith('attachment; filename="')
    assert unquote(disposition.split("filename*=UTF-8''")[1]) == "现场 照片.png"


async def test_range_requests(gateway: Gateway) -> None:
    digest = await _file_case(gateway)
    async with httpx.AsyncClient(base_url=base_url(gateway)) as client:
        part = await client.get(f"/v1/attachments/{digest}",
                                headers={**AUTH, "Range": "bytes=8-15"})
        tail = await client.get(f"/v1/attachments/{digest}",
                                headers={**AUTH, "Range": "bytes=-4"})
        beyond = await client.get(f"/v1/attachments/{digest}",
                                  headers={**AUTH, "Range": "bytes=99999-"})
    assert part.status_code == 206
    assert part.content == PHOTO[8:16]
    assert part.headers["content-range"] == f"bytes 8-15/{len(PHOTO)}"
    assert tail.status_code == 206 and tail.content == PHOTO[-4:]
    assert beyond.status_code == 416
    assert beyond.headers["content-type"].startswith("application/problem+json")
    assert beyond.headers["content-range"] == f"bytes */{len(PHOTO)}"


async def test_refusals(gateway: Gateway) -> None:
    digest = await _file_case(gateway)
    orphan = b"kept for a record that never became a case"
    orphan_digest = hashlib.sha256(orphan).hexdigest()
    AttachmentStore(gateway.config.attachments_dir).keep(orphan, orphan_digest)
    async with httpx.AsyncClient(base_url=base_url(gateway)) as client:
        anonymous = await client.get(f"/v1/attachments/{digest}")
        orphaned = await client.get(f"/v1/attachments/{orphan_digest}", headers=AUTH)
        unknown = await client.get(f"/v1/attachments/{'0' * 64}", headers=AUTH)
        malformed = await client.get("/v1/attachments/..%2F..%2Fgateway.db", headers=AUTH)
        upper = await client.get(f"/v1/attachments/{digest.upper()}", headers=AUTH)
    assert anonymous.status_code == 401
    for refused in (orphaned, unknown):
        assert refused.status_code == 404
        assert refused.headers["content-type"].startswith("application/problem+json")
    for bad in (malformed, upper):
        assert bad.status_code == 422
        assert bad.json()["errors"][0]["field"] == "sha256"


async def test_an_older_store_is_indexed_by_the_migration(gateway: Gateway) -> None:
    """A store from before the index: its cases' attachments are found once it migrates."""
    digest = await _file_case(gateway)

    def found(tx: Tx) -> attachment_index.IndexedAttachment | None:
        return attachment_index.find(tx, digest)

    def downgrade(tx: Tx) -> None:
        tx.execute("DROP TABLE case_attachments")
        tx.execute("DELETE FROM schema_migrations WHERE version = ?", (INDEX_VERSION,))

    assert (await gateway.store.read(found)) is not None
    await gateway.store.write(downgrade)
    assert await gateway.store.write(migrate) == [INDEX_VERSION]
    listed = await gateway.store.read(found)
    assert listed is not None
    assert (listed.file_name, listed.media_type, listed.size) == (
        "现场 照片.png", "image/png", len(PHOTO))


@pytest.mark.parametrize(("name", "expected"), [
    ("report.pdf", 'attachment; filename="report.pdf"'),
    ('a"b.txt', 'attachment; filename="a_b.txt"'),
    ("dir\\c.txt", 'attachment; filename="c.txt"'),
    ("照片.jpg", "attachment; filename=\"__.jpg\"; filename*=UTF-8''%E7%85%A7%E7%89%87.jpg"),
    ("../../etc/passwd", 'attachment; filename="passwd"'),
    ("evil\r\nSet-Cookie: x.png", 'attachment; filename="evil_Set-Cookie_ x.png"'),
])
def test_content_disposition(name: str, expected: str) -> None:
    assert content_disposition(name) == expected


def test_media_type_is_kept_only_when_plain() -> None:
    assert safe_media_type("image/png") == "image/png"
    assert safe_media_type("text/plain; charset=utf-8") == "text/plain; charset=utf-8"
    assert safe_media_type("text/html\r\nX-Evil: 1") == "application/octet-stream"
    assert safe_media_type("") == "application/octet-stream"


