"""A gateway as a real subprocess (``python -m gateway run``): write its YAML config,
start it, wait for ``/readyz``, kill it hard or stop it gracefully, run the CLI."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import IO, Any

import httpx
import yaml

ROOT = Path(__file__).resolve().parent.parent
PYTHON = Path(sys.executable)
MINSHENG = PYTHON.parent / "minsheng"
API_TOKEN = "test-api-token-subprocess"
# Secrets go in the environment, referenced from the file as ${VAR}, as in production.
TEST_ENV = {"MINSHENG_API_TOKEN": API_TOKEN}


def write_config(path: Path, raw: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(raw, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


def subprocess_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    return {**os.environ, "PYTHONUNBUFFERED": "1", **TEST_ENV, **(extra or {})}


def run_cli(*args: str, env: dict[str, str] | None = None,
            timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    """Run ``minsheng ARGS`` and return what it did (never raises on a non-zero exit)."""
    return subprocess.run(
        [str(MINSHENG), *args], cwd=ROOT, env=subprocess_env(env), capture_output=True,
        text=True, timeout=timeout,
    )


class GatewayProcess:
    """One ``python -m gateway run --config CONFIG``; its output goes to ``log_path``."""

    new_session = False  # a session of its own (a worker group killed whole: test_workers)

    def __init__(self, config_path: Path, log_path: Path, base_url: str,
                 env: dict[str, str] | None = None, module: str = "gateway") -> None:
        self.config_path = config_path
        self.module = module  # what ``python -m`` runs
        self.log_path = log_path
        self.base_url = base_url
        self.env = subprocess_env(env)
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    def start(self) -> None:
        assert self.proc is None, "already running"
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in _reap
        self.proc = subprocess.Popen(
            [str(PYTHON), "-m", self.module, "run", "--config", str(self.config_path)],
            cwd=ROOT, env=self.env, stdout=self._log, stderr=subprocess.STDOUT,
            start_new_session=self.new_session,
        )

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    async def wait_ready(self, timeout: float = 60.0) -> None:
        """Poll ``GET /readyz`` until 200; fail with the log's tail if it never comes."""
        deadline = time.monotonic() + timeout
        async with httpx.AsyncClient(base_url=self.base_url, timeout=2.0) as client:
            while time.monotonic() < deadline:
                if not self.alive:
                    raise RuntimeError(f"gateway exited early:\n{self.log_tail()}")
                try:
                    if (await client.get("/readyz")).status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.1)
        raise RuntimeError(f"gateway not ready within {timeout}s:\n{self.log_tail()}")

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs, as in a power cut or an OOM kill."""
        if self.proc is not None:
            self.proc.send_signal(signal.SIGKILL)
            self._reap(10.0)

    def terminate(self, timeout: float = 30.0) -> int | None:
        """SIGTERM and wait for a graceful exit (killed if it takes longer than ``timeout``)."""
        if self.proc is None:
            return None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self._reap(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise

    def _reap(self, timeout: float) -> int:
        assert self.proc is not None
        code = self.proc.wait(timeout)
        self.proc = None
        if self._log is not None:
            self._log.close()
            self._log = None
        return code

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])
