"""A TCP proxy on loopback that counts round trips between a client and PostgreSQL.

psycopg says nothing about how often it waits for the server, and pg_stat_statements
counts statements, not waits. The wire protocol shows them: the client waits for the
server after a Sync (``S``: the end of a statement, or of a pipeline's part), a simple
Query (``Q``) or a Flush (``H``: asks for the answers so far). The proxy reads the
client's message stream (after the untyped SSL request and startup message) and counts
those.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
from urllib.parse import urlsplit, urlunsplit


class RoundTripProxy:
    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self.target = (parts.hostname or "127.0.0.1", parts.port or 5432)
        self._listener = socket.create_server(("127.0.0.1", 0))
        port = self._listener.getsockname()[1]
        self.url = urlunsplit(parts._replace(netloc=f"{parts.username}@127.0.0.1:{port}"))
        self._lock = threading.Lock()
        self.round_trips = 0
        self._sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            server = socket.create_connection(self.target)
            self._sockets += [client, server]
            threading.Thread(target=self._pump, args=(client, server, True),
                             daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client, False),
                             daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, from_client: bool) -> None:
        reader = _ClientMessages()
        with contextlib.suppress(OSError):
            while data := src.recv(65536):
                if from_client:
                    waits = reader.feed(data)
                    with self._lock:
                        self.round_trips += waits
                dst.sendall(data)
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)

    def reset(self) -> int:
        with self._lock:
            count, self.round_trips = self.round_trips, 0
        return count

    def close(self) -> None:
        self._listener.close()
        for sock in self._sockets:
            with contextlib.suppress(OSError):
                sock.close()


_SSL_OR_GSS = {80877103, 80877104}  # SSLRequest, GSSENCRequest: no type byte either


class _ClientMessages:
    """Splits the client's byte stream into protocol messages; counts those it waits on."""

    def __init__(self) -> None:
        self.buffer = b""
        self.started = False  # the untyped startup message has gone

    def feed(self, data: bytes) -> int:
        self.buffer += data
        waits = 0
        while True:
            if not self.started:
                if len(self.buffer) < 8:
                    return waits
                length, code = struct.unpack("!ii", self.buffer[:8])
                if len(self.buffer) < length:
                    return waits
                self.started = code not in _SSL_OR_GSS
                self.buffer = self.buffer[length:]
                continue
            if len(self.buffer) < 5:
                return waits
            kind, length = self.buffer[:1], struct.unpack("!i", self.buffer[1:5])[0]
            if len(self.buffer) < 1 + length:
                return waits
            waits += kind in (b"S", b"Q", b"H")
            self.buffer = self.buffer[1 + length:]
