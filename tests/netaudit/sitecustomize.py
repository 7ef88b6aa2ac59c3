"""Records every outbound connection attempt of a Python process (tests only).

Put this folder first on ``PYTHONPATH`` and name a file in ``MINSHENG_NET_AUDIT``: Python
imports ``sitecustomize`` at start-up, and the audit hook below (PEP 578) then appends one
JSON line per ``socket.connect``, ``socket.sendto``/``sendmsg`` (UDP, e.g. DNS) and
``socket.getaddrinfo`` (a name looked up) to that file, from any thread, before the
attempt is made. tests/test_no_stray_connections.py reads it. Connections made inside C
libraries (libpq) do not pass through the socket module and are not seen: that test
uses a SQLite store.
"""

from __future__ import annotations

import json
import os
import socket
import sys
from typing import Any

_PATH = os.environ.get("MINSHENG_NET_AUDIT")
_EVENTS = {"socket.connect", "socket.sendto", "socket.sendmsg", "socket.getaddrinfo"}


def _address(event: str, args: tuple[Any, ...]) -> tuple[str, Any, Any]:
    if event == "socket.getaddrinfo":
        return "name", args[0], args[1]
    sock, address = args[0], args[-1]
    family = getattr(sock, "family", None)
    if family == socket.AF_UNIX:
        return "unix", address if isinstance(address, str) else repr(address), None
    if isinstance(address, tuple) and len(address) >= 2:
        return "inet", address[0], address[1]
    return "other", repr(address), None


def _hook(event: str, args: tuple[Any, ...]) -> None:
    if event not in _EVENTS or _PATH is None:
        return
    kind, host, port = _address(event, args)
    host = host.decode() if isinstance(host, bytes) else host
    line = json.dumps({"event": event, "kind": kind, "host": host,
                       "port": None if port is None else str(port), "pid": os.getpid()})
    fd = os.open(_PATH, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, (line + "\n").encode())
    finally:
        os.close(fd)


if _PATH:
    sys.addaudithook(_hook)
