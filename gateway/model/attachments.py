"""Content-addressed attachment store: bytes kept once under their sha256.

Files live at ``<root>/ab/cdef…`` and are written to a temporary name, fsync'd and
renamed, so a reader never sees half a file and a crash leaves no torn attachment.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import tempfile
import unicodedata
from pathlib import Path, PurePosixPath, PureWindowsPath

from gateway.model.private_files import private_dir
from gateway.model.schema import Attachment

# Controls (C0, DEL, C1), reserved characters, and invisible format characters: zero-width
# ones and the bidi overrides that make "invoice\u202efdp.exe" look like "invoiceexe.pdf".
_UNSAFE = re.compile(
    r"[\x00-\x1f\x7f-\x9f<>:\"/\\|?*\u200b-\u200f\u202a-\u202e\u2066-\u2069\ufeff]+"
)
# Windows device names: "CON", "nul.png" or "COM1.tar.gz" open the device, not a file,
# on any Windows machine an operator saves the attachment to (superscript digits too).
_DEVICE = re.compile(r"^(CON|PRN|AUX|NUL|CONIN\$|CONOUT\$|(COM|LPT)[0-9\u00b9\u00b2\u00b3])$",
                     re.IGNORECASE)
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
MAX_NAME_CHARS = 120
MAX_EXT_CHARS = 16


def sanitize_file_name(name: str | None, fallback: str = "attachment") -> str:
    """A file name safe to show and store: no path, no control or reserved characters,
    no Windows device name (``CON``, ``NUL.png``: prefixed with ``_``), no leading ``-``
    (an option to a command line tool)."""
    if not name:
        return fallback
    base = PureWindowsPath(PurePosixPath(name).name).name  # drop any directory part
    base = unicodedata.normalize("NFC", base)
    if not _UNSAFE.sub("", base).strip(" ."):  # nothing but controls, dots and blanks
        return fallback
    base = _UNSAFE.sub("_", base).strip(" .")
    if _DEVICE.match(base.split(".", 1)[0].rstrip(" ")) or base.startswith("-"):
        base = "_" + base
    if len(base) > MAX_NAME_CHARS:
        stem, dot, ext = base.rpartition(".")
        if dot and stem and len(ext) <= MAX_EXT_CHARS:  # keep a real extension
            base = stem[: MAX_NAME_CHARS - len(ext) - 1] + dot + ext
        else:
            base = base[:MAX_NAME_CHARS]
    return base


def _write_atomically(target: Path, data: bytes) -> None:
    """Write to a unique temporary name beside ``target``, fsync, rename, fsync the folder.

    The temporary name is unique per call, so two threads keeping the same bytes at once
    do not write into one file; whichever renames last wins with identical content.
    """
    private_dir(target.parent)  # 0700; mkstemp makes the file 0600
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name[:16]}.", suffix=".tmp",
                                    dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp_name, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise
    _fsync_dir(target.parent)


def _fsync_dir(path: Path) -> None:
    """Make a rename durable (POSIX); a no-op where folders cannot be opened (Windows)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def describe(data: bytes, file_name: str | None, media_type: str) -> Attachment:
    """The attachment record of ``data`` (pure: nothing is written)."""
    digest = hashlib.sha256(data).hexdigest()
    return Attachment(
        file_name=sanitize_file_name(file_name),
        media_type=media_type or "application/octet-stream",
        size=len(data),
        sha256=digest,
        storage_ref=f"sha256:{digest}",
    )


class AttachmentStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    def path_of(self, sha256: str) -> Path:
        """Where the bytes of ``sha256`` live; anything but 64 lower-case hex digits is refused
        (a digest from a URL must not walk out of the store)."""
        if not _SHA256.match(sha256):
            raise ValueError(f"not a sha256 hex digest: {sha256[:80]!r}")
        return self.root / sha256[:2] / sha256[2:]

    def save(self, data: bytes, file_name: str | None, media_type: str) -> Attachment:
        """Keep ``data`` (once, whatever its name) and describe it. Blocking: call off-loop."""
        attachment = describe(data, file_name, media_type)
        self.keep(data, attachment.sha256)
        return attachment

    def keep(self, data: bytes, sha256: str | None = None) -> None:
        """Write ``data`` under its digest unless it is there already. Blocking."""
        target = self.path_of(sha256 or hashlib.sha256(data).hexdigest())
        if not target.exists():
            _write_atomically(target, data)

    def read(self, sha256: str) -> bytes:
        return self.path_of(sha256).read_bytes()
