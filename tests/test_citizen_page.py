"""The citizen page without a browser: what a browser without JavaScript does, done with
aiohttp's client (GET the form, post it as multipart/form-data with a browser's Accept),
and the parts of the page's machinery (Accept negotiation, CSRF tokens) on their own."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import aiohttp
import pytest

from adapters.web_mailbox.page import CSP, CsrfTokens, prefers_html
from gateway.server.app import Gateway
from tests.citizen_page import BROWSER_ACCEPT, GOOD, field_error, form_values, page_gateway, png
from tests.conftest import base_url

Files = Sequence[tuple[str, bytes, str]]  # (file name, bytes, media type)
CODE = re.compile(r'id="case-code"[^>]*>([A-Z0-9-]+)<')


def multipart(fields: dict[str, str], files: Files = ()) -> aiohttp.FormData:
    # As a browser sends it: multipart even without files, file names as raw UTF-8.
    form = aiohttp.FormData(quote_fields=False, default_to_multipart=True)
    for name, value in fields.items():
        form.add_field(name, value)
    for file_name, data, media in files:
        form.add_field("attachments", data, filename=file_name, content_type=media)
    return form


async def fetch_form(session: aiohttp.ClientSession, base: str) -> dict[str, str]:
    async with session.get(f"{base}/") as response:
        assert response.status == 200
        assert response.content_type == "text/html"
        assert response.headers["Content-Security-Policy"] == CSP
        return form_values(await response.text())


async def post_page(session: aiohttp.ClientSession, base: str, fields: dict[str, str],
                    files: Files = ()) -> tuple[int, str]:
    async with session.post(f"{base}/intake/web", data=multipart(fields, files),
                            headers={"Accept": BROWSER_ACCEPT}) as response:
        assert response.content_type == "text/html"
        assert response.headers["Content-Security-Policy"] == CSP
        return response.status, await response.text()


async def counts(gw: Gateway) -> tuple[int, int]:
    row = await gw.store.read(lambda tx: tx.fetchone(
        "SELECT (SELECT COUNT(*) FROM cases), (SELECT COUNT(*) FROM raw_records)"))
    return int(row[0]), int(row[1])


async def test_form_post_without_javascript_answers_the_case_code(tmp_path: Path) -> None:
    async with page_gateway(tmp_path) as gw, aiohttp.ClientSession() as session:
        base = base_url(gw)
        values = await fetch_form(session, base)
        assert set(values) >= {"csrf_token", "submission_id", "content", "phone", "email"}
        status, html = await post_page(session, base, {**values, **GOOD},
                                       [("路口.png", png(), "image/png")])
        assert status == 202
        code = CODE.search(html)
        assert code is not None, html
        assert "请把编号写下来或截屏保存" in html and "take a screenshot" in html
        async with session.get(f"{base}/v1/cases/{code.group(1)}",
                               headers={"Authorization": "Bearer test-api-token"}) as case:
            document = await case.json()
        assert document["reporter"]["phone"] == "+8613800138000"
        assert [a["file_name"] for a in document["attachments"]] == ["路口.png"]
        # Sent twice (a reload, a double click): the form's submission id makes it a replay.
        status, again = await post_page(session, base, {**values, **GOOD})
        assert status == 200 and "已经提交过" in again
        assert CODE.search(again).group(1) == code.group(1)  # type: ignore[union-attr]


async def test_refusal_shows_each_error_beside_its_field_and_keeps_the_input(
        tmp_path: Path) -> None:
    async with page_gateway(tmp_path, max_name_chars=4) as gw, aiohttp.ClientSession() as session:
        base = base_url(gw)
        values = await fetch_form(session, base)
        bad = {"name": "欧阳<b>娜娜</b>", "phone": "1380013", "content": " ",
               "subject": '"><script>alert(1)</script>'}
        status, html = await post_page(session, base, {**values, **bad})
        assert status == 422
        assert field_error(html, "name") == ("姓名不能超过 4 字 "
                                             "name is longer than 4 characters (11)")
        assert field_error(html, "phone").startswith("不是有效的中国手机或固定电话号码")
        assert field_error(html, "content") == "内容不能为空 content is required"
        assert field_error(html, "email") == ""
        kept = form_values(html)
        assert kept["name"] == bad["name"] and kept["subject"] == bad["subject"]
        assert "<script>alert(1)" not in html  # the citizen's text is escaped, never markup
        assert kept["csrf_token"] and kept["submission_id"] == values["submission_id"]
        assert 'aria-describedby="hint-phone err-phone"' in html
        assert (await counts(gw)) == (0, 1)  # journaled as rejected, like the API's refusals


async def test_a_stale_or_missing_token_is_refused_and_nothing_is_journaled(
        tmp_path: Path) -> None:
    async with page_gateway(tmp_path) as gw, aiohttp.ClientSession() as session:
        base = base_url(gw)
        values = await fetch_form(session, base)
        stale = CsrfTokens("web", "test-csrf-key", 3600).issue(now=0)
        real = values["csrf_token"]
        tampered = real[:-1] + ("1" if real[-1] == "0" else "0")  # never the token itself
        for token in ("", stale, tampered, "9" * 30):
            status, html = await post_page(session, base, {**values, **GOOD,
                                                           "csrf_token": token})
            assert status == 403
            assert "页面已过期或无效" in html
            assert form_values(html)["content"] == GOOD["content"]
        assert (await counts(gw)) == (0, 0)


async def test_api_clients_keep_json_without_a_token(tmp_path: Path) -> None:
    async with page_gateway(tmp_path) as gw, aiohttp.ClientSession() as session:
        url = f"{base_url(gw)}/intake/web"
        for accept in ("*/*", "application/json", "application/json, text/html;q=0.5"):
            async with session.post(url, data=multipart({**GOOD, "subject": accept}),
                                    headers={"Accept": accept}) as response:
                assert response.status == 202
                assert (await response.json())["case_code"]
        async with session.post(url, data=multipart({"content": ""}),
                                headers={"Accept": "application/json"}) as response:
            assert response.status == 422 and response.content_type == "application/problem+json"


async def test_the_rate_limit_applies_to_the_page(tmp_path: Path) -> None:
    limit = {"burst": 1, "per_minute": 1, "exempt": []}
    async with page_gateway(tmp_path, rate_limit=limit) as gw, \
            aiohttp.ClientSession() as session:
        base = base_url(gw)
        values = await fetch_form(session, base)
        assert (await post_page(session, base, {**values, **GOOD}))[0] == 202
        async with session.post(f"{base}/intake/web", data=multipart({**values, **GOOD}),
                                headers={"Accept": BROWSER_ACCEPT}) as response:
            assert response.status == 429 and response.content_type == "text/html"
            assert int(response.headers["Retry-After"]) > 0
            assert "提交过于频繁" in await response.text()


async def test_limits_and_messages_come_from_the_source_options(tmp_path: Path) -> None:
    options = {"max_content_chars": 300, "max_attachments": 2, "max_attachment_mb": 1.5,
               "allowed_media_types": ["image/png", "image/jpeg"]}
    async with page_gateway(tmp_path, **options) as gw, aiohttp.ClientSession() as session, \
            session.get(f"{base_url(gw)}/") as response:
        html = await response.text()
    assert 'maxlength="300"' in html and "不超过 300 字" in html
    assert "内容不能超过 300 字" in html  # the message the browser shows, the server's own
    assert 'accept="image/png,image/jpeg"' in html
    assert "最多 2 个，每个不超过 1.5 MB" in html and "附件不能超过 2 个" in html


async def test_static_files_and_no_page_for_a_token_source(tmp_path: Path) -> None:
    async with page_gateway(tmp_path) as gw, aiohttp.ClientSession() as session:
        base = base_url(gw)
        async with session.get(f"{base}/intake/web/static/page.js") as response:
            assert response.status == 200 and response.content_type == "text/javascript"
        async with session.get(f"{base}/intake/web/static/..%2Fpage.py") as response:
            assert response.status == 404
            assert response.content_type == "application/problem+json"
    async with page_gateway(tmp_path / "t", token="backend-only") as gw, \
            aiohttp.ClientSession() as session, session.get(f"{base_url(gw)}/") as response:
        assert response.status == 404


async def test_page_path_is_configurable(tmp_path: Path) -> None:
    async with page_gateway(tmp_path, page_path="/xinxiang") as gw, \
            aiohttp.ClientSession() as session:
        async with session.get(f"{base_url(gw)}/xinxiang") as response:
            assert response.status == 200 and 'action="/intake/web"' in await response.text()
        async with session.get(f"{base_url(gw)}/") as response:
            assert response.status == 404


@pytest.mark.parametrize(("accept", "html"), [
    (BROWSER_ACCEPT, True), ("text/html", True), ("*/*", False), ("", False),
    ("application/json", False), ("text/html;q=0.5, application/json", False),
    ("text/*, application/json;q=0.9", True), ("text/html;q=0", False),
    ("text/html;q=abc", False), ("text/html, application/problem+json", False),
])
def test_accept_negotiation(accept: str, html: bool) -> None:
    assert prefers_html(accept) is html


def test_csrf_tokens() -> None:
    tokens = CsrfTokens("web", "k", 3600)
    token = tokens.issue(now=10_000)
    assert tokens.valid(token, now=10_000 + 3599)
    assert not tokens.valid(token, now=10_000 + 3601)  # expired
    assert not tokens.valid(token, now=10_000 - 120)  # from the future
    assert not CsrfTokens("other", "k", 3600).valid(token, now=10_000)  # another source
    assert not CsrfTokens("web", None, 3600).valid(token, now=10_000)  # another key
    for forged in ("", ".", "10000.", "10000.00", "１0000." + token.split(".")[1], "x.y"):
        assert not tokens.valid(forged, now=10_000)


async def test_an_empty_file_input_is_no_attachment(tmp_path: Path) -> None:
    """A browser sends an unused file input as a part with an empty file name and no
    bytes: that is no file, for the page and the API alike."""
    async with page_gateway(tmp_path) as gw, aiohttp.ClientSession() as session:
        base = base_url(gw)
        values = await fetch_form(session, base)
        status, html = await post_page(session, base, {**values, **GOOD},
                                       [("", b"", "application/octet-stream")])
        assert status == 202 and CODE.search(html)


@pytest.mark.parametrize(("content_type", "body", "status"), [
    ("multipart/form-data", b"--x\r\n", 400),  # no boundary parameter
    ("multipart/form-data; boundary=x", b"--x\r\nContent-Disposition: form-data; na", 400),
    ("multipart/form-data; boundary=x", b"--x\r\n" + b"X: y\r\n" * 40 + b"\r\n", 400),
    ("multipart/form-data; boundary=x",
     b"".join(b'--x\r\nContent-Disposition: form-data; name="f"\r\n\r\nv\r\n'
              for _ in range(60)) + b"--x--\r\n", 413),
])
async def test_a_malformed_page_post_is_a_page_too(tmp_path: Path, content_type: str,
                                                   body: bytes, status: int) -> None:
    async with page_gateway(tmp_path) as gw, aiohttp.ClientSession() as session, \
            session.post(f"{base_url(gw)}/intake/web", data=body, headers={
                "Content-Type": content_type, "Accept": BROWSER_ACCEPT}) as response:
        assert response.status == status
        assert response.content_type == "text/html"
        assert "返回" in await response.text()
