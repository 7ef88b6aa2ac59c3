"""The web mailbox through the real HTTP endpoint, on both engines."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx

from gateway.app import Gateway
from tests.conftest import base_url

SUBMISSION = {
    "name": "黄女士", "phone": "13800138000", "subject": "共享单车乱停放",
    "content": "小区门口共享单车堆放严重，影响通行。", "address": "城阳区正阳路",
}


async def _sink_lines(path: Path, want: int, timeout: float = 5.0) -> list[dict[str, object]]:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        lines = path.read_text().splitlines() if path.exists() else []
        if len(lines) >= want or asyncio.get_running_loop().time() > deadline:
            return [json.loads(line) for line in lines]
        await asyncio.sleep(0.05)


async def test_new_then_replay_by_idempotency_key(gateway: Gateway, tmp_path: Path) -> None:
    async with httpx.AsyncClient(base_url=base_url(gateway)) as client:
        first = await client.post("/intake/web", json=SUBMISSION,
                                  headers={"Idempotency-Key": "k-1"})
        again = await client.post("/intake/web", json=SUBMISSION,
                                  headers={"Idempotency-Key": "k-1"})
    assert first.status_code == 202
    assert first.json()["outcome"] == "new"
    assert again.status_code == 200
    assert again.json() == {"outcome": "replay", "case_code": first.json()["case_code"]}
    lines = await _sink_lines(tmp_path / "cases.jsonl", 1)
    await asyncio.sleep(0.5)  # a second forward would show up by now
    lines = await _sink_lines(tmp_path / "cases.jsonl", 1)
    assert [line["case_code"] for line in lines] == [first.json()["case_code"]]
    assert lines[0]["reporter"]["phone"] == "+8613800138000"  # type: ignore[index]
