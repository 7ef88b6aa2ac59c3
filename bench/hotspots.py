"""Where the gateway spends its time under the benchmark's load: py-spy, summarized.

``bench/ingest.py --profile FILE`` records the gateway process with ``py-spy record
--format raw --threads`` for the measured run (py-spy is not a project dependency:
``pip install py-spy`` anywhere on PATH; it needs ptrace, i.e. root or
``kernel.yama.ptrace_scope=0``). The summary splits the samples by thread and lists the
functions with the most samples, inclusive (the function or anything it called) and
self (the function's own frame), as a share of that thread's samples and as sampled
microseconds per request.

Two ways to read it. By default py-spy samples every thread it does not see idle, and a
thread blocked inside C (SQLite's fsync at COMMIT, ``send()`` waiting to get the GIL
back) counts as busy: the figures are thread time, near wall-clock time. With
``--profile-gil`` only the thread holding the GIL is sampled: the figures are the
Python work that the event loop and the writer thread compete for. Sampling makes the
run a little slower: read its throughput as a profile, not as the benchmark figure.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections import Counter
from pathlib import Path
from typing import Any

RATE_HZ = 200
TOP = 15
_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^():]*?)(?::\d+)?\)$")
_THREAD_NAME = re.compile(r"_\d+$")  # asyncio_0, store-read_1: one row per pool
# Frames every stack of a thread goes through: left out of the inclusive list.
_PLUMBING = ("<frozen runpy>", "click/core.py", "asyncio/runners.py", "threading.py",
             "gateway/__main__.py", "gateway/cli/__init__.py", "concurrent/futures/thread.py")
_PLUMBING_SUFFIXES = (
    *(f"({p})" for p in _PLUMBING),
    "BaseEventLoop.run_forever (asyncio/base_events.py)",
    "BaseEventLoop.run_until_complete (asyncio/base_events.py)",
)


def executable() -> str:
    found = shutil.which("py-spy")
    if found is None:
        raise RuntimeError("--profile needs py-spy on PATH (pip install py-spy)")
    return found


def start(pid: int, duration: float, out: Path, gil: bool = False) -> subprocess.Popen[bytes]:
    cmd = [executable(), "record", "--pid", str(pid), "--duration", str(max(1, round(duration))),
           "--rate", str(RATE_HZ), "--format", "raw", "--threads", "--output", str(out)]
    if gil:
        cmd.append("--gil")
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def finish(proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
    _, err = proc.communicate(timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"py-spy failed ({proc.returncode}): {err.decode()[-1000:]}")


def _short(frame: str) -> str:
    """``func (path:line)`` → ``func (path)``: lines of one function are added up."""
    match = _FRAME.match(frame.strip())
    return f"{match['func']} ({match['file']})" if match else frame.strip()


def _parse(path: Path) -> list[tuple[str, list[str], int]]:
    """(thread name, frames root first, samples) per line of py-spy's raw output, whose
    first frame reads ``thread (TID): NAME``."""
    stacks = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        head, *frames = stack.split(";")
        thread = head.split(": ", 1)[1] if ": " in head else head
        stacks.append((_THREAD_NAME.sub("", thread), frames, int(count)))
    return stacks


def summarize(path: Path, requests: int, gil: bool = False) -> dict[str, Any]:
    """Per thread kind: samples, and the top functions inclusive and self."""
    threads: dict[str, dict[str, Any]] = {}
    for thread, frames, count in _parse(path):
        entry = threads.setdefault(thread, {
            "samples": 0, "inclusive": Counter(), "self": Counter()})
        entry["samples"] += count
        calls = [_short(f) for f in frames]
        for func in set(calls):
            if not func.endswith(_PLUMBING_SUFFIXES):
                entry["inclusive"][func] += count
        if calls:
            entry["self"][calls[-1]] += count
    out: dict[str, Any] = {"rate_hz": RATE_HZ, "requests": requests, "gil": gil,
                           "threads": {}}
    for name, entry in sorted(threads.items(), key=lambda kv: -kv[1]["samples"]):
        total = entry["samples"]
        out["threads"][name] = {
            "samples": total, "us_per_request": _us_per_request(total, requests),
            "inclusive": _top(entry["inclusive"], total, requests),
            "self": _top(entry["self"], total, requests),
        }
    return out


def _us_per_request(samples: int, requests: int) -> float:
    return round(samples * 1e6 / RATE_HZ / max(requests, 1), 1)


def _top(counter: Counter[str], total: int, requests: int) -> list[dict[str, Any]]:
    return [{"function": func, "share": round(n / total, 3),
             "us_per_request": _us_per_request(n, requests)}
            for func, n in counter.most_common(TOP)]


def render(summary: dict[str, Any]) -> str:
    lines = [f"py-spy profile of the gateway ({summary['rate_hz']} Hz, "
             f"{summary['requests']} requests{', GIL holder only' if summary['gil'] else ''})"]
    for name, entry in summary["threads"].items():
        lines.append(f"\n[{name}] {entry['samples']} samples ≈ {entry['us_per_request']} "
                     "µs per request")
        for kind in ("inclusive", "self"):
            lines.append(f"  top {kind}:")
            lines.extend(f"    {row['share'] * 100:5.1f} %  {row['us_per_request']:7.1f} µs/req  "
                         f"{row['function']}" for row in entry[kind])
    return "\n".join(lines)
