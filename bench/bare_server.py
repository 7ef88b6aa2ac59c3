"""The baseline of the intake benchmark: aiohttp with nothing behind it.

``POST /intake/<source>`` reads and parses the JSON body and answers 202 with a small
JSON document, the same shape the gateway answers; ``GET /healthz`` says it is up. No
access log (the gateway runs without one too). Run by ``bench/ingest.py`` as its own
process::

    .venv/bin/python bench/bare_server.py --port 8081
"""

from __future__ import annotations

import argparse

from aiohttp import web

ANSWER = {"outcome": "new", "case_code": "CY-20191120-W-000123-7"}


async def intake(request: web.Request) -> web.Response:
    await request.json()
    return web.json_response(ANSWER, status=202)


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "alive"})


def build_app() -> web.Application:
    app = web.Application()
    app.add_routes([web.post("/intake/{source}", intake), web.get("/healthz", healthz)])
    return app


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    web.run_app(build_app(), host=args.host, port=args.port, access_log=None, print=None)


if __name__ == "__main__":
    main()
