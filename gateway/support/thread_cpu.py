"""CPU seconds of one thread of this process, read from ``/proc`` (Linux).

Why: a gateway process does its work on two threads, the event loop (HTTP, parsing,
normalizing, fingerprinting) and the store's writer (the case, its statements, the
commit), and which of them is busy decides what helps: the two together near a whole core
(they share the interpreter lock) want more workers (``server.workers``); the writer
alone near a whole core on SQLite is the store's limit, which more workers do not lift.
The process's total CPU cannot tell them apart.

``/proc/self/task/<id>/stat`` rather than ``time.pthread_getcpuclockid``: a thread that
has ended leaves only a missing file here, where a clock asked for an ended (detached)
thread is undefined behaviour. Ticks are 10 ms; a counter needs no finer.
"""

from __future__ import annotations

import os
from pathlib import Path

_TICKS_PER_S = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
# /proc/<pid>/task/<tid>/stat after the ")" closing the name: utime and stime are
# fields 14 and 15 of the line, 12th and 13th after the name.
_UTIME, _STIME = 11, 12


def thread_cpu_s(native_id: int | None) -> float | None:
    """User and system CPU seconds of this process's thread ``native_id``
    (``threading.get_native_id()``); None where there is no such thread or no /proc."""
    if native_id is None:
        return None
    return stat_cpu_s(Path(f"/proc/self/task/{native_id}/stat"))


def stat_cpu_s(stat: Path) -> float | None:
    """User and system CPU seconds in a ``/proc`` stat file, a thread's or a whole
    process's (``/proc/<pid>/stat``: bench/servers.py); None when it cannot be read."""
    try:
        line = stat.read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError):
        return None
    fields = line[line.rindex(")") + 2:].split()
    return (int(fields[_UTIME]) + int(fields[_STIME])) / _TICKS_PER_S
