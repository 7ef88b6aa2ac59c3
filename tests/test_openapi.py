"""``GET /openapi.json``: the document is valid OpenAPI 3.1 and says exactly what the
router serves (every route with its method, no operation without a route), for the
shipped-like config and for one with every hotline format and authentication scheme."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiohttp import web
from openapi_spec_validator import validate
from openapi_spec_validator.validation.exceptions import OpenAPIValidationError

from gateway.server.app import Gateway
from gateway.server.http import build_app
from gateway.support.config import parse_config
from tests.conftest import base_url, raw_config
from tests.fuzz_gateway import SECRETS, fuzz_config
from tests.pg import free_port

HTTP_METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}


@pytest.fixture(params=["default", "every-format"])
async def gateway(request: pytest.FixtureRequest, tmp_path: Path,
                  monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Gateway]:
    """A gateway in this process on SQLite, with the web mailbox alone (as shipped) or
    with the fuzzers' six sources (every format, every authentication scheme)."""
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    url = f"sqlite:///{tmp_path / 'gateway.db'}"
    raw = raw_config(tmp_path, url) if request.param == "default" \
        else fuzz_config(tmp_path, free_port())
    gw = Gateway(parse_config(raw))
    await gw.start()
    try:
        yield gw
    finally:
        await gw.stop()


async def fetch_document(gw: Gateway) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=base_url(gw)) as client:
        response = await client.get("/openapi.json")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    document: dict[str, Any] = response.json()
    return document


def router_operations(app: web.Application) -> set[tuple[str, str]]:
    """(method, path) of every route; the HEAD aiohttp adds beside each GET is implied
    by the GET, as OpenAPI has it."""
    found = {(route.method.lower(), route.resource.canonical)
             for route in app.router.routes() if route.resource is not None}
    implied = {("head", path) for method, path in found if method == "get"}
    return found - implied


def document_operations(document: dict[str, Any]) -> set[tuple[str, str]]:
    return {(method, path) for path, item in document["paths"].items()
            for method in item if method in HTTP_METHODS}


async def test_the_document_is_valid_openapi_3_1(gateway: Gateway) -> None:
    document = await fetch_document(gateway)
    assert document["openapi"].startswith("3.1")
    try:
        validate(document)
    except OpenAPIValidationError as exc:  # pragma: no cover - the message is the point
        pytest.fail(f"not valid OpenAPI 3.1: {exc}")


async def test_every_route_is_documented_and_every_operation_routed(gateway: Gateway) -> None:
    document = await fetch_document(gateway)
    routed = router_operations(build_app(gateway))
    documented = document_operations(document)
    assert routed - documented == set(), "routes missing from /openapi.json"
    assert documented - routed == set(), "operations in /openapi.json without a route"


async def test_every_operation_documents_its_refusals_as_problem_json(gateway: Gateway) -> None:
    document = await fetch_document(gateway)
    for path, item in document["paths"].items():
        for method, op in item.items():
            answers = op["responses"]
            assert any(code[0] in "23" for code in answers), (method, path)
            refusals = [a for code, a in answers.items() if code.startswith("4")
                        and "application/problem+json" in a.get("content", {})]
            assert refusals, f"{method} {path} documents no problem+json refusal"


async def test_intake_bodies_name_each_media_type_a_source_accepts(gateway: Gateway) -> None:
    document = await fetch_document(gateway)
    paths = document["paths"]
    web_media = set(paths["/intake/web"]["post"]["requestBody"]["content"])
    assert web_media == {"application/json", "application/x-www-form-urlencoded",
                         "multipart/form-data"}
    if gateway.config.sources[-1].name != "hotline-twilio":
        return
    media = {path: set(item["post"]["requestBody"]["content"])
             for path, item in paths.items() if "post" in item and "hotline" in path
             and "notes" not in path}
    assert media == {
        "/intake/hotline-json": {"application/json"},
        "/intake/hotline-fs": {"application/json", "application/x-www-form-urlencoded",
                               "application/x-www-form-base64-encoded"},
        "/intake/hotline-cti/{token}": {"application/json",
                                        "application/x-www-form-urlencoded"},
        "/intake/hotline-twilio": {"application/x-www-form-urlencoded", "application/json"},
    }
    schemes = document["components"]["securitySchemes"]
    assert schemes["hotline-json-auth"]["name"] == "X-Minsheng-Signature"
    assert schemes["hotline-fs-auth"] == {"type": "http", "scheme": "basic"}
    assert schemes["hotline-twilio-auth"]["name"] == "X-Twilio-Signature"
    assert paths["/intake/web"]["post"]["security"] == [{"web-token": []}]
