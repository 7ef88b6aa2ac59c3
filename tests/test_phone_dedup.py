"""Dedup of phone cases, on both engines, through the real HTTP endpoints: the gateway's
own callback text never links two citizens, and a case whose notes come later is found
by them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.fixtures.cdr import case, generic, running
from tests.fixtures.cdr import source as phone_source
from tests.fixtures.cdr import url as base

HOTLINE = phone_source("hotline", "generic_json", missed_calls="callback")
WEB = {"name": "web", "adapter": "web_mailbox"}
NOTES = {"subject": "燃气表不走字", "caller_name": "赵女士", "agent": "1024",
         "content": "市民反映家中燃气表近两周不走字，担心计量有误，要求燃气公司上门检查。",
         "address": "城阳区文阳路 16 号 3 单元 502"}


@pytest.fixture
async def client(tmp_path: Path, store_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with running(tmp_path, store_url, HOTLINE, WEB) as gw, \
            httpx.AsyncClient(base_url=base(gw)) as http:
        http.gateway = gw  # type: ignore[attr-defined]
        yield http


async def missed(client: httpx.AsyncClient, call_id: str, caller: str) -> dict[str, Any]:
    answer = await client.post("/intake/hotline",
                               json=generic("generic_missed.json", call_id=call_id, caller=caller))
    assert answer.status_code == 202 and answer.json()["outcome"] == "new", answer.text
    return await case(client.gateway, client, answer.json()["case_code"])  # type: ignore


async def test_missed_calls_of_different_citizens_are_not_related(
    client: httpx.AsyncClient,
) -> None:
    first = await missed(client, "missed-1", "13705321234")
    other = await missed(client, "missed-2", "13912345678")
    again = await missed(client, "missed-3", "13705321234")
    assert first["tags"] == ["callback", "abandoned"]
    # the same words (the gateway's), different citizens: nothing in common
    assert other["dedup"]["kind"] == "new" and other["dedup"]["cluster_id"] is None
    # the same citizen missed twice: linked to the first callback
    assert again["dedup"]["kind"] == "repeat"
    assert again["dedup"]["repeat_of"] == first["case_code"]


async def test_a_callback_case_is_found_by_the_notes_that_come_later(
    client: httpx.AsyncClient,
) -> None:
    callback = await missed(client, "missed-notes", "13705321234")
    assert callback["dedup"]["kind"] == "new"
    notes = await client.post("/intake/hotline/calls/missed-notes/notes", json=NOTES)
    assert (notes.status_code, notes.json()["outcome"]) == (200, "updated"), notes.text
    # a neighbour writes to the web mailbox about the same gas meter
    neighbour = await client.post("/intake/web", json={
        "name": "钱先生", "phone": "13811112222", "subject": "燃气表不走字",
        "content": NOTES["content"], "address": NOTES["address"]})
    assert neighbour.status_code == 202, neighbour.text
    assert neighbour.json()["outcome"] == "related"
    assert neighbour.json()["cluster_id"] == f"CL-{callback['case_code']}"
    # and the caller herself, through the web mailbox with her number: a repeat
    herself = await client.post("/intake/web", json={
        "name": "赵女士", "phone": "13705321234", "subject": "燃气表还是不走字",
        "content": NOTES["content"], "address": NOTES["address"]})
    assert herself.json()["outcome"] == "repeat"
    assert herself.json()["repeat_of"] == callback["case_code"]


async def test_corrected_notes_refile_an_answered_call(client: httpx.AsyncClient) -> None:
    record = generic("generic_answered.json", call_id="hl-corrected", notes=None)
    assert (await client.post("/intake/hotline", json=record)).json()["waiting_for"] == "notes"
    first_notes = {**NOTES, "subject": "路灯不亮",
                   "content": "正阳路 88 号门口路灯一周不亮，晚上行人看不清路。"}
    filed = await client.post("/intake/hotline/calls/hl-corrected/notes", json=first_notes)
    assert filed.json()["outcome"] == "new"
    fixed = await client.post("/intake/hotline/calls/hl-corrected/notes", json=NOTES)
    assert fixed.json()["outcome"] == "updated"
    about_lamp = await client.post("/intake/web", json={
        "name": "孙女士", "phone": "13833334444", "content": first_notes["content"]})
    about_gas = await client.post("/intake/web", json={
        "name": "钱先生", "phone": "13811112222", "content": NOTES["content"],
        "address": NOTES["address"]})
    assert about_lamp.json()["outcome"] == "new"  # the old text is no longer indexed
    assert about_gas.json()["outcome"] == "related"
