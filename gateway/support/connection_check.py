"""What ``minsheng check-config --connect`` learns of one target: reached or not, and why.

Every source adapter and sink kind answers ``check_connection()`` (a method of its base
class, "not checked" unless the kind implements it); the store has its own. The reasons
are written for an operator at a console, in Chinese with English beside it. Nothing here
logs: what reached the console is the operator's own config.
"""

from __future__ import annotations

import asyncio
import os
import socket
import ssl
from collections.abc import Awaitable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import httpx

from gateway.model.errors import GatewayError

CheckState = Literal["ok", "failed", "not_checked"]
# An OSError kind and what an operator reads for it, most specific first.
_OS_REASONS: list[tuple[type[BaseException], str, str]] = [
    (ConnectionRefusedError, "连接被拒绝", "connection refused"),
    (ConnectionResetError, "连接被重置", "connection reset"),
    (socket.gaierror, "无法解析主机名", "host name not found"),
    (ssl.SSLCertVerificationError, "证书校验失败", "certificate not trusted"),
    (ssl.SSLError, "TLS 握手失败", "TLS handshake failed"),
    (PermissionError, "没有权限", "permission denied"),
    (FileNotFoundError, "路径不存在", "no such file or folder"),
    (TimeoutError, "超时", "timed out"),
]


@dataclass(frozen=True)
class ConnectionCheck:
    """The answer for one target; ``detail`` is bilingual (``中文 (English)``)."""

    state: CheckState
    detail: str = ""

    @classmethod
    def ok(cls, zh: str, en: str) -> ConnectionCheck:
        return cls("ok", f"{zh} ({en})")

    @classmethod
    def failed(cls, zh: str, en: str) -> ConnectionCheck:
        return cls("failed", f"{zh} ({en})")

    @classmethod
    def not_checked(cls, zh: str = "此类目标不支持连接检查",
                    en: str = "this kind has no connection check") -> ConnectionCheck:
        return cls("not_checked", f"{zh} ({en})")

    def line(self, target: str) -> str:
        """One console line: ``sinks.platform: ok — …``."""
        label = {"ok": "ok", "failed": "失败 (FAILED)", "not_checked": "未检查 (not checked)"}
        return f"{target}: {label[self.state]}" + (f" — {self.detail}" if self.detail else "")


def failure(exc: BaseException) -> ConnectionCheck:
    """A failed check naming the cause: the gateway's own errors carry a bilingual
    message already; an OS or TLS error found anywhere in the cause chain is named in
    both languages; anything else by its type and text."""
    if isinstance(exc, GatewayError):
        return ConnectionCheck("failed", str(exc))
    seen: BaseException | None = exc
    while seen is not None:
        for kind, zh, en in _OS_REASONS:
            if isinstance(seen, kind):
                return ConnectionCheck.failed(zh, f"{en}: {exc}" if str(exc) else en)
        seen = seen.__cause__ or seen.__context__
    if isinstance(exc, httpx.TimeoutException):
        return ConnectionCheck.failed("超时", f"timed out: {type(exc).__name__}")
    if isinstance(exc, httpx.HTTPError):
        return ConnectionCheck.failed("无法连接", f"cannot connect: {type(exc).__name__}: {exc}")
    return ConnectionCheck.failed("检查出错", f"{type(exc).__name__}: {str(exc)[:300]}")


async def run_check(probe: Awaitable[ConnectionCheck], timeout_s: float) -> ConnectionCheck:
    """``probe`` bounded by ``timeout_s``; whatever it raises becomes a failed check."""
    try:
        return await asyncio.wait_for(probe, timeout_s)
    except TimeoutError:
        return ConnectionCheck.failed(f"{timeout_s:g} 秒内无应答",
                                      f"no answer within {timeout_s:g} s")
    except Exception as exc:
        return failure(exc)


def writable_folder(path: Path) -> ConnectionCheck:
    """Whether a file at ``path`` can be written: the file itself when it exists, else its
    folder, or the nearest existing ancestor the folder would be created in."""
    if path.exists():
        ok = os.access(path, os.W_OK)
        return (ConnectionCheck.ok("文件可写", f"{path} is writable") if ok else
                ConnectionCheck.failed("文件不可写", f"{path} is not writable"))
    folder = path.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        return ConnectionCheck.failed("上级路径不是目录", f"{folder} is not a folder")
    if not os.access(folder, os.W_OK | os.X_OK):
        return ConnectionCheck.failed("目录不可写", f"cannot create files in {folder}")
    if folder != path.parent:
        return ConnectionCheck.ok("目录将被创建", f"{path.parent} will be created in {folder}")
    return ConnectionCheck.ok("目录可写", f"{path.parent} is writable")
