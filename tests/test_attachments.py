"""The content-addressed attachment store and the file names it shows."""

from __future__ import annotations

import hashlib
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from gateway.model.attachments import MAX_NAME_CHARS, AttachmentStore, sanitize_file_name

PHOTO = b"\xff\xd8\xff\xe0" + bytes(range(256)) * 40


def files_under(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


# --- content addressing ------------------------------------------------------------------

def test_same_bytes_are_stored_once_whatever_their_name(tmp_path: Path) -> None:
    store = AttachmentStore(tmp_path)
    first = store.save(PHOTO, "现场照片.jpg", "image/jpeg")
    second = store.save(PHOTO, "IMG_0001.JPG", "image/jpeg")
    digest = hashlib.sha256(PHOTO).hexdigest()
    assert first.sha256 == second.sha256 == digest
    assert first.storage_ref == second.storage_ref == f"sha256:{digest}"
    assert (first.file_name, second.file_name) == ("现场照片.jpg", "IMG_0001.JPG")
    assert first.size == len(PHOTO)
    assert files_under(tmp_path) == [tmp_path / digest[:2] / digest[2:]]
    assert store.read(digest) == PHOTO


def test_different_bytes_are_different_files(tmp_path: Path) -> None:
    store = AttachmentStore(tmp_path)
    a = store.save(b"first", "a.txt", "text/plain")
    b = store.save(b"second", "a.txt", "text/plain")
    assert a.sha256 != b.sha256
    assert len(files_under(tmp_path)) == 2
    assert store.read(a.sha256) == b"first" and store.read(b.sha256) == b"second"


def test_empty_file_and_missing_media_type(tmp_path: Path) -> None:
    att = AttachmentStore(tmp_path).save(b"", None, "")
    assert att.size == 0
    assert att.sha256 == hashlib.sha256(b"").hexdigest()
    assert att.file_name == "attachment"
    assert att.media_type == "application/octet-stream"


def test_existing_file_is_not_rewritten(tmp_path: Path) -> None:
    store = AttachmentStore(tmp_path)
    att = store.save(PHOTO, "a.jpg", "image/jpeg")
    path = store.path_of(att.sha256)
    before = path.stat().st_mtime_ns
    os.utime(path, ns=(before - 10**9, before - 10**9))
    store.save(PHOTO, "b.jpg", "image/jpeg")
    assert path.stat().st_mtime_ns == before - 10**9


@pytest.mark.parametrize("digest", [
    "../../etc/passwd", "/etc/passwd", "ab/../../x", "", "a" * 63, "A" * 64, "g" * 64,
    "a" * 65, "aa/" + "b" * 61,
])
def test_a_digest_that_is_not_sha256_hex_cannot_walk_out(tmp_path: Path, digest: str) -> None:
    store = AttachmentStore(tmp_path / "attachments")
    with pytest.raises(ValueError):
        store.path_of(digest)
    with pytest.raises(ValueError):
        store.read(digest)


# --- atomic writes -----------------------------------------------------------------------

def test_saving_leaves_no_temporary_files(tmp_path: Path) -> None:
    store = AttachmentStore(tmp_path)
    for i in range(20):
        store.save(PHOTO + bytes([i]), f"{i}.jpg", "image/jpeg")
    names = [p.name for p in files_under(tmp_path)]
    assert len(names) == 20
    assert not [n for n in names if n.startswith(".") or n.endswith(".tmp")]


def test_concurrent_saves_of_the_same_bytes(tmp_path: Path) -> None:
    """Two uploads of one photo at once (threads, as ``asyncio.to_thread`` runs them)."""
    store = AttachmentStore(tmp_path)
    data = PHOTO * 64
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lambda i: store.save(data, f"{i}.jpg", "image/jpeg"), range(64)))
    assert {r.sha256 for r in results} == {hashlib.sha256(data).hexdigest()}
    assert len(files_under(tmp_path)) == 1
    assert store.read(results[0].sha256) == data


def test_a_failed_write_leaves_neither_file_nor_temporary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def disk_full(src: object, dst: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", disk_full)
    store = AttachmentStore(tmp_path)
    with pytest.raises(OSError, match="No space"):
        store.save(PHOTO, "a.jpg", "image/jpeg")
    monkeypatch.undo()
    assert files_under(tmp_path) == []
    store.save(PHOTO, "a.jpg", "image/jpeg")  # and a retry succeeds
    assert len(files_under(tmp_path)) == 1


# --- file names --------------------------------------------------------------------------

@pytest.mark.parametrize(("given", "shown"), [
    ("现场照片.jpg", "现场照片.jpg"),
    ("../../etc/passwd", "passwd"),
    ("/etc/passwd", "passwd"),
    ("..\\..\\windows\\system32\\drivers\\etc\\hosts", "hosts"),
    ("C:\\Users\\黄\\Desktop\\投诉材料.docx", "投诉材料.docx"),
    ("\\\\fileserver\\share\\scan.pdf", "scan.pdf"),
    ("photos/2019/IMG_0001.JPG", "IMG_0001.JPG"),
    ("a\x00b\x1fc\x7fd.txt", "a_b_c_d.txt"),
    ("new\nline\r.txt", "new_line_.txt"),
    ('what?<is>"this"|*.txt', "what_is_this_.txt"),
    ("invoice\u202efdp.exe", "invoice_fdp.exe"),   # right-to-left override spoofing
    ("zero\u200bwidth.png", "zero_width.png"),
    ("  .hidden.  ", "hidden"),
    ("Cafe\u0301.png", "Café.png"),
    ("C:report.pdf", "report.pdf"),
])
def test_names_are_sanitized(given: str, shown: str) -> None:
    assert sanitize_file_name(given) == shown


@pytest.mark.parametrize("given", [None, "", "   ", ".", "..", "../", "/", "\\", "C:", "...",
                                   "\x00\x01"])
def test_empty_names_fall_back(given: str | None) -> None:
    assert sanitize_file_name(given) == "attachment"
    assert sanitize_file_name(given, fallback="附件") == "附件"


def test_a_very_long_name_keeps_its_extension() -> None:
    shown = sanitize_file_name("关于小区噪音问题的反映材料" * 20 + ".pdf")
    assert len(shown) == MAX_NAME_CHARS
    assert shown.endswith(".pdf") and shown.startswith("关于小区噪音问题的反映材料")


@pytest.mark.parametrize("given", ["x." + "y" * 300, "a" * 300, "." + "b" * 300,
                                   "报告" * 100 + "." + "扩展名" * 10])
def test_no_name_is_longer_than_the_limit(given: str) -> None:
    shown = sanitize_file_name(given)
    assert 0 < len(shown) <= MAX_NAME_CHARS
    assert not shown.startswith(".")


def test_sanitized_name_is_what_save_reports(tmp_path: Path) -> None:
    att = AttachmentStore(tmp_path).save(b"x", "../../../etc/cron.d/job", "text/plain")
    assert att.file_name == "job"
    assert files_under(tmp_path)[0].is_relative_to(tmp_path)
