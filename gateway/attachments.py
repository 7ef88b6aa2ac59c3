"""Content-addressed attachment store: bytes kept once under their sha256.

Files live at ``<root>/ab/cdef…`` and are written to a temporary name, fsync'd and
renamed, so a reader never sees half a file and a crash leaves no torn attachment.
"""

from __future__ import annotations

import hashlib
import os
import re
import unicodedata
from pathlib import Path, PurePosixPath, PureWindowsPath

from gateway.schema import Attachment

_UNSAFE = re.compile(r"[\x00-\x1f\x7f<>:\"/\\|?*]+")
MAX_NAME_CHARS = 120


def sanitize_file_name(name: str | None, fallback: str = "attachment") -> str:
    """A file name safe to show and store: no path, no control or reserved characters."""
    if not name:
        return fallback
    base = PureWindowsPath(PurePosixPath(name).name).name  # drop any directory part
    base = unicodedata.normalize("NFC", base)
    base = _UNSAFE.sub("_", base).strip(" .")
    if not base:
        return fallback
    if len(base) > MAX_NAME_CHARS:
        stem, dot, ext = base.rpartition(".")
        base = (stem[: MAX_NAME_CHARS - len(ext) - 1] + dot + ext) if dot else base[:MAX_NAME_CHARS]
    return base


class AttachmentStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    def path_of(self, sha256: str) -> Path:
        return self.root / sha256[:2] / sha256[2:]

    def save(self, data: bytes, file_name: str | None, media_type: str) -> Attachment:
        """Keep ``data`` (once, whatever its name) and describe it. Blocking: call off-loop."""
        digest = hashlib.sha256(data).hexdigest()
        target = self.path_of(digest)
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
            with open(tmp, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, target)
        return Attachment(
            file_name=sanitize_file_name(file_name),
            media_type=media_type or "application/octet-stream",
            size=len(data),
            sha256=digest,
            storage_ref=f"sha256:{digest}",
        )

    def read(self, sha256: str) -> bytes:
        return self.path_of(sha256).read_bytes()
