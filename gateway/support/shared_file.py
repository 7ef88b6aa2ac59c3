"""An anonymous file a process shares with the children it forks (the rate limits'
buckets, gateway/intake/shared_buckets.py; a SQLite worker group's turns,
gateway/store/group_write_lock.py).

A memfd where the kernel has one (Linux): memory with no name on any file system, gone
with the last process holding it. Elsewhere (a developer's macOS) an unlinked temporary
file does the same job. Both take POSIX record locks and map into memory alike.
"""

from __future__ import annotations

import os
import tempfile
import weakref


def shared_file(name: str, owner: object) -> int:
    """The file's descriptor, closed when ``owner`` is garbage; ``name`` shows in
    /proc/<pid>/fd of a memfd, for whoever looks."""
    fd = -1
    if hasattr(os, "memfd_create"):
        try:
            fd = os.memfd_create(name, os.MFD_CLOEXEC)
        except OSError:  # a sandbox that forbids it
            fd = -1
    if fd < 0:
        with tempfile.TemporaryFile(prefix=f"{name}-") as handle:
            fd = os.dup(handle.fileno())
    weakref.finalize(owner, os.close, fd)
    return fd
