"""A GeoReport v2 endpoint for the tests, written from the spec (wiki.open311.org/GeoReport_v2):
``GET services.json`` lists services; ``POST requests.json`` takes a form-encoded service
request and checks what the spec requires of it: the ``api_key``, a known
``service_code``, the ``jurisdiction_id`` when the endpoint has one, and a location
(``lat`` + ``long`` or ``address_string``). A missing or wrong field is answered with the
spec's error array ``[{"code": 400, "description": "…"}]``.

``answer_with``: ``"id"`` (``[{"service_request_id": …}]``), ``"token"``
(``[{"token": …}]``), or a status as text (``"503"``) answered with an error array.
"""

from __future__ import annotations

import itertools
import socket
from typing import Any, Literal

from aiohttp import web

Answer = Literal["id", "token"] | str
SERVICES = [
    {"service_code": "001", "service_name": "Noise", "group": "environment",
     "metadata": False, "type": "realtime", "description": "noise", "keywords": ""},
    {"service_code": "002", "service_name": "Other", "group": "general",
     "metadata": False, "type": "realtime", "description": "other", "keywords": ""},
]


def _errors(status: int, description: str) -> web.Response:
    return web.json_response([{"code": status, "description": description}], status=status)


class Open311Server:
    def __init__(self, api_key: str, jurisdiction_id: str | None = None) -> None:
        self.api_key = api_key
        self.jurisdiction_id = jurisdiction_id
        self.answer_with: Answer = "id"
        self.received: list[dict[str, str]] = []  # the forms of accepted requests
        self._ids = itertools.count(1001)
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def start(self) -> str:
        app = web.Application()
        app.add_routes([web.get("/open311/v2/services.json", self._services),
                        web.post("/open311/v2/requests.json", self._request)])
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        await web.SockSite(self._runner, sock).start()
        self.url = f"http://127.0.0.1:{sock.getsockname()[1]}/open311/v2"
        return self.url

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _services(self, request: web.Request) -> web.Response:
        if request.query.get("jurisdiction_id") != self.jurisdiction_id:
            return _errors(404, "jurisdiction_id not found")
        return web.json_response(SERVICES)

    def _problem(self, form: dict[str, str]) -> tuple[int, str] | None:
        """What the spec (and this endpoint) refuses in a request, if anything."""
        if form.get("api_key") != self.api_key:
            return 403, "api_key missing or not valid"
        if self.jurisdiction_id and form.get("jurisdiction_id") != self.jurisdiction_id:
            return 404, "jurisdiction_id not found"
        if form.get("service_code") not in {s["service_code"] for s in SERVICES}:
            return 400, "service_code not found"
        if not ({"lat", "long"} <= form.keys() or form.get("address_string")):
            return 400, "lat/long or address_string required"
        return None

    async def _request(self, request: web.Request) -> web.Response:
        if request.content_type != "application/x-www-form-urlencoded":
            return _errors(400, "the request must be form-encoded")
        form = {k: str(v) for k, v in (await request.post()).items()}
        if (problem := self._problem(form)) is not None:
            return _errors(*problem)
        if self.answer_with.isdigit():
            return _errors(int(self.answer_with), "not now")
        self.received.append(form)
        answer: dict[str, Any] = {"service_notice": "", "account_id": None}
        number = next(self._ids)
        if self.answer_with == "token":
            answer["token"] = f"tok-{number}"
        else:
            answer["service_request_id"] = str(number)
        return web.json_response([answer], status=201)
