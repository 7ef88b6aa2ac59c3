"""Per sink ``attachments: link | inline | omit``: one helper shapes what every sink
receives (gateway/delivery/attachments.py). Unit tests of the helper, then a real
gateway delivering one case to a jsonl sink per mode and to an HTTP receiver, and the
platform fetching the linked bytes with the pull API's token."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.delivery.attachments import AttachmentShaper
from gateway.model.attachments import AttachmentStore
from gateway.model.errors import ConfigError
from gateway.server.app import Gateway
from gateway.store.outbox import Delivery
from gateway.support.config import SinkConfig, parse_config
from tests.conftest import raw_config, sink_lines
from tests.receiver import Receiver

PUBLIC = "https://gateway.example.gov.cn/minsheng/"
SMALL = b"\xff\xd8\xff\xe0 a small JPEG photo"
LARGE = b"x" * 3000
AUTH = {"Authorization": "Bearer test-api-token"}


def _attachment(data: bytes, name: str) -> dict[str, Any]:
    digest = hashlib.sha256(data).hexdigest()
    return {"file_name": name, "media_type": "image/jpeg", "size": len(data),
            "sha256": digest, "storage_ref": f"sha256:{digest}"}


def _delivery(attachments: list[dict[str, Any]]) -> Delivery:
    body = json.dumps({"case_code": "CY-1", "content": "照片见附件", "attachments": attachments},
                      ensure_ascii=False)
    return Delivery(7, "s", "case", "CY-1", body, 0, 0.0)


def _sink(mode: str, max_kb: int = 1) -> SinkConfig:
    return SinkConfig.model_validate({"name": "s", "kind": "jsonl", "attachments": mode,
                                      "attachments_inline_max_kb": max_kb})


@pytest.fixture
def shaper(tmp_path: Path) -> AttachmentShaper:
    files = AttachmentStore(tmp_path / "attachments")
    files.keep(SMALL)
    files.keep(LARGE)
    return AttachmentShaper(files, PUBLIC)


async def _shaped(shaper: AttachmentShaper, mode: str) -> list[dict[str, Any]]:
    batch = [_delivery([_attachment(SMALL, "a.jpg"), _attachment(LARGE, "b.jpg")])]
    [delivery] = await shaper.shape(_sink(mode), batch)
    assert (delivery.outbox_id, delivery.case_code, delivery.kind) == (7, "CY-1", "case")
    items: list[dict[str, Any]] = json.loads(delivery.body)["attachments"]
    return items


async def test_link_gives_absolute_urls(shaper: AttachmentShaper) -> None:
    items = await _shaped(shaper, "link")
    assert [i["storage_ref"] for i in items] == [
        f"https://gateway.example.gov.cn/minsheng/v1/attachments/{i['sha256']}" for i in items]
    assert all("content_base64" not in i for i in items)


async def test_inline_up_to_the_limit_then_link(shaper: AttachmentShaper) -> None:
    small, large = await _shaped(shaper, "inline")
    assert base64.b64decode(small["content_base64"]) == SMALL
    assert "content_base64" not in large  # 3000 bytes > 1 KB: linked instead
    assert large["storage_ref"].endswith(f"/v1/attachments/{large['sha256']}")


async def test_inline_links_bytes_no_longer_on_disk(shaper: AttachmentShaper) -> None:
    gone = _attachment(b"deleted", "gone.jpg")
    [delivery] = await shaper.shape(_sink("inline"), [_delivery([gone])])
    [item] = json.loads(delivery.body)["attachments"]
    assert "content_base64" not in item and item["storage_ref"].startswith("https://")


async def test_omit_drops_them(shaper: AttachmentShaper) -> None:
    assert await _shaped(shaper, "omit") == []


async def test_untouched_without_attachments_or_public_url(tmp_path: Path) -> None:
    event = Delivery(1, "s", "event", None, '{"cluster_id":"c1","size":5}', 0, 0.0)
    plain = _delivery([])
    shaper = AttachmentShaper(AttachmentStore(tmp_path), None)
    assert await shaper.shape(_sink("omit"), [event, plain]) == [event, plain]
    with_file = _delivery([_attachment(SMALL, "a.jpg")])
    [linked] = await shaper.shape(_sink("link"), [with_file])
    assert json.loads(linked.body)["attachments"][0]["storage_ref"].startswith("sha256:")


def test_config_keys_are_checked(tmp_path: Path) -> None:
    raw = raw_config(tmp_path, "sqlite:///x.db", api={"public_url": "ftp://x"}, sinks=[
        {"name": "f", "kind": "jsonl", "path": "x.jsonl", "attachments": "attach",
         "attachments_inline_max_kb": 0}])
    with pytest.raises(ConfigError) as caught:
        parse_config(raw)
    text = "\n".join(caught.value.errors)
    for key in ("api.public_url", "attachments", "attachments_inline_max_kb"):
        assert key in text, text


async def test_each_sink_gets_its_mode(tmp_path: Path, store_url: str) -> None:
    receiver = Receiver()
    url = await receiver.start()
    jsonl = {"kind": "jsonl", "poll_interval_s": 0.2}
    raw = raw_config(tmp_path, store_url, api={"token": "test-api-token", "public_url": PUBLIC},
                     sinks=[{"name": "linked", "path": str(tmp_path / "link.jsonl"), **jsonl},
                            {"name": "inlined", "path": str(tmp_path / "inline.jsonl"),
                             "attachments": "inline", **jsonl},
                            {"name": "bare", "path": str(tmp_path / "omit.jsonl"),
                             "attachments": "omit", **jsonl},
                            {"name": "platform", "kind": "http", "url": url,
                             "attachments": "inline", "poll_interval_s": 0.2}])
    gw = Gateway(parse_config(raw))
    await gw.start()
    try:
        await _deliver_one_case(gw, tmp_path, receiver)
    finally:
        await gw.stop()
        await receiver.close()


async def _deliver_one_case(gw: Gateway, tmp_path: Path, receiver: Receiver) -> None:
    base = f"http://{gw.config.server.listen}"
    async with httpx.AsyncClient(base_url=base) as client:
        form = {"content": "路灯坏了，晚上很黑", "phone": "13900139000"}
        answer = await client.post("/intake/web", data=form,
                                   files=[("photo", ("路灯.jpg", SMALL, "image/jpeg"))])
        assert answer.status_code == 202, answer.text
        [linked] = (await sink_lines(tmp_path / "link.jsonl", 1))[0]["attachments"]
        [inlined] = (await sink_lines(tmp_path / "inline.jsonl", 1))[0]["attachments"]
        assert (await sink_lines(tmp_path / "omit.jsonl", 1))[0]["attachments"] == []
        await receiver.wait_for(lambda: len(receiver.accepted) == 1)
        [posted] = next(iter(receiver.accepted.values()))["attachments"]
        assert base64.b64decode(inlined["content_base64"]) == SMALL
        assert posted["content_base64"] == inlined["content_base64"]
        # The link works once the public address is mapped to this gateway.
        path = linked["storage_ref"].removeprefix(PUBLIC.rstrip("/"))
        fetched = await client.get(path, headers=AUTH)
    assert fetched.status_code == 200 and fetched.content == SMALL
    stored = await gw.store.read(lambda tx: tx.fetchone("SELECT document FROM cases")[0])
    assert f'"storage_ref":"sha256:{linked["sha256"]}"' in stored  # the case stays as kept
