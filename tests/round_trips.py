"""A TCP proxy on loopback that counts round trips between a client and PostgreSQL.

psycopg says nothing about how often it waits for the server, and pg_stat_statements
counts statements, not waits. The wire protocol shows them: the client waits for the
server after a Sync (``S``: the end of a statement, or of a pipeline's part), a simple
Query (``Q``) or a Flush (``H``: asks for the answers so far). The proxy reads the
client's message stream (after the untyped SSL request and startup message) and counts
those, and the statements sent (``statements``: a Bind, ``B``, or a simple Query each).

With ``delay_s`` it also holds every answer of the server that long before passing it
on, in order: a database a network hop away (``bench/ingest.py --db-delay-ms``).
"""

from __future__ import annotations

import contextlib
import queue
import socket
import struct
import threading
import time
from urllib.parse import urlsplit, urlunsplit


class RoundTripProxy:
    def __init__(self, url: str, delay_s: float = 0.0) -> None:
        self.delay_s = delay_s
        parts = urlsplit(url)
        self.target = (parts.hostname or "127.0.0.1", parts.port or 5432)
        self._listener = socket.create_server(("127.0.0.1", 0))
        port = self._listener.getsockname()[1]
        self.url = urlunsplit(parts._replace(netloc=f"{parts.username}@127.0.0.1:{port}"))
        self._lock = threading.Lock()
        self.round_trips = 0
        self.statements = 0
        self.last_statements = 0  # the statements of the count ``reset`` returned last
        self._last_bytes = time.monotonic()  # when the client last sent anything
        self._sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            server = socket.create_connection(self.target)
            for sock in (client, server):  # pass small answers on at once (no Nagle)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._sockets += [client, server]
            threading.Thread(target=self._pump, args=(client, server, True),
                             daemon=True).start()
            answers = self._pump if not self.delay_s else self._pump_delayed
            threading.Thread(target=answers, args=(server, client, False),
                             daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, from_client: bool) -> None:
        reader = _ClientMessages()
        with contextlib.suppress(OSError):
            while data := src.recv(65536):
                if from_client:
                    waits, statements = reader.feed(data)
                    with self._lock:
                        self.round_trips += waits
                        self.statements += statements
                        self._last_bytes = time.monotonic()
                dst.sendall(data)
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)

    def _pump_delayed(self, src: socket.socket, dst: socket.socket, from_client: bool) -> None:
        """``_pump``, each chunk passed on ``delay_s`` after it came (a thread that sends)."""
        due: queue.SimpleQueue[tuple[float, bytes]] = queue.SimpleQueue()

        def send() -> None:
            with contextlib.suppress(OSError):
                while data := (item := due.get())[1]:
                    time.sleep(max(0.0, item[0] - time.monotonic()))
                    dst.sendall(data)
            with contextlib.suppress(OSError):
                dst.shutdown(socket.SHUT_WR)

        threading.Thread(target=send, daemon=True).start()
        with contextlib.suppress(OSError):
            while data := src.recv(65536):
                due.put((time.monotonic() + self.delay_s, data))
        due.put((0.0, b""))

    def reset(self, quiet_s: float = 0.05) -> int:
        """The waits counted since the last reset (and its statements in
        ``last_statements``), once the client has sent nothing for
        ``quiet_s`` (at most 2 s): bytes a client sent just before are counted where they
        belong, not in the next count (the proxy's threads read them a little later)."""
        deadline = time.monotonic() + 2.0
        while (idle := time.monotonic() - self._last_bytes) < quiet_s \
                and time.monotonic() < deadline:
            time.sleep(quiet_s - idle)
        with self._lock:
            count, self.round_trips = self.round_trips, 0
            self.last_statements, self.statements = self.statements, 0
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

    def feed(self, data: bytes) -> tuple[int, int]:
        """(waits, statements) in the messages ``data`` completes."""
        self.buffer += data
        waits = statements = 0
        while True:
            if not self.started:
                if len(self.buffer) < 8:
                    return waits, statements
                length, code = struct.unpack("!ii", self.buffer[:8])
                if len(self.buffer) < length:
                    return waits, statements
                self.started = code not in _SSL_OR_GSS
                self.buffer = self.buffer[length:]
                continue
            if len(self.buffer) < 5:
                return waits, statements
            kind, length = self.buffer[:1], struct.unpack("!i", self.buffer[1:5])[0]
            if len(self.buffer) < 1 + length:
                return waits, statements
            waits += kind in (b"S", b"Q", b"H")
            statements += kind in (b"B", b"Q")
            self.buffer = self.buffer[1 + length:]
