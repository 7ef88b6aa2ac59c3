"""Reply history in a mail body: what the sender wrote, and the quoted history below it.

A citizen who answers the centre's reply usually sends the whole thread back. The part
before the first history marker is the complaint; the rest is cut off here (the raw
mail, with its history, stays in the journal). Markers, in Chinese and English clients:

- separator lines: ``-----原始邮件-----``, ``------------------ 原始邮件 ------------------``
  (QQ Mail), ``---- 回复的原邮件 ----``, ``-----Original Message-----``, an Outlook rule of
  underscores followed by a header block;
- attribution lines: ``在 2019年11月20日 09:30，张三 <zs@163.com> 写道：``,
  ``张三 <zs@gmail.com> 于2019年11月20日周三 上午9:30写道：``,
  ``On Wed, Nov 20, 2019 at 9:30 AM Zhang San <zs@example.com> wrote:`` (also wrapped
  over two lines);
- header blocks: ``发件人：…`` / ``From: …`` followed within a few lines by at least two
  of 发送时间 时间 日期 收件人 抄送 主题 / Sent Date To Cc Subject;
- a trailing block of ``>``-quoted lines.

Forwarded content ("Forwarded message") is kept: a forwarded mail is the matter itself
(the normalizer does not cut history at all from a mail whose subject says it is a
forward, since QQ Mail marks forwards with "原始邮件" too). When nothing would remain
above the marker, nothing is cut.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_SEPARATOR = re.compile(
    r"^\s*[-—_=*]{2,}\s*(原始邮件|原邮件|回复的原邮件|邮件原文|Original Message|Reply Message|"
    r"Original)\s*[-—_=*]{2,}\s*$",
    re.IGNORECASE,
)
_RULE = re.compile(r"^\s*_{10,}\s*$")
_ATTRIBUTION = (
    re.compile(r"^\s*(在|于).{0,200}写道\s*[:：]\s*$"),
    re.compile(r"^.{0,200}于\s*\d{4}\s*[年/-].{0,100}写道\s*[:：]\s*$"),
    re.compile(r"^\s*On\s.{0,250}\bwrote\s*:\s*$", re.IGNORECASE),
    re.compile(r"^.{0,150}<[^<>@\s]+@[^<>\s]+>\s*(wrote|写道)\s*[:：]\s*$", re.IGNORECASE),
)
_HEADER_START = re.compile(r"^\s*\**\s*(发件人|From)\s*\**\s*[:：]", re.IGNORECASE)
_HEADER_FIELD = re.compile(
    r"^\s*\**\s*(发送时间|时间|日期|收件人|抄送|主题|Sent|Date|To|Cc|Subject)\s*\**\s*[:：]",
    re.IGNORECASE,
)
_HEADER_WINDOW = 6
_FORWARDED = re.compile(r"(Forwarded message|Forwarded by|转发的?邮件|转发邮件信息|轉寄)",
                        re.IGNORECASE)


@dataclass(frozen=True)
class Split:
    """``text`` is what the sender wrote; ``quoted`` the history cut off ("" if none)."""

    text: str
    quoted: str = ""
    marker: str | None = None


def _header_block(lines: list[str], index: int) -> bool:
    """A ``发件人：``/``From:`` line followed closely by two more header labels."""
    if not _HEADER_START.match(lines[index]):
        return False
    window = lines[index + 1:index + 1 + _HEADER_WINDOW]
    return sum(1 for line in window if _HEADER_FIELD.match(line)) >= 2


def _attribution(lines: list[str], index: int) -> bool:
    line = lines[index]
    if any(p.match(line) for p in _ATTRIBUTION):
        return True
    # "On Wed, 20 Nov 2019 at 09:30, Zhang San <zs@example.com>\nwrote:" wraps in places.
    if index + 1 < len(lines) and re.match(r"^\s*On\s", line, re.IGNORECASE):
        joined = f"{line.rstrip()} {lines[index + 1].strip()}"
        return bool(_ATTRIBUTION[2].match(joined))
    return False


def _marker(lines: list[str], index: int) -> str | None:
    line = lines[index]
    if _SEPARATOR.match(line):
        return "separator"
    if _RULE.match(line) and index + 1 < len(lines) and _header_block(lines, index + 1):
        return "separator"
    if _attribution(lines, index):
        return "attribution"
    if _header_block(lines, index) and not _after_forward_line(lines, index):
        return "header_block"
    return None


def _after_forward_line(lines: list[str], index: int) -> bool:
    """A header block right under "---------- Forwarded message ----------" is the
    forwarded mail, not reply history."""
    above = [line for line in lines[max(0, index - 3):index] if line.strip()]
    return bool(above) and bool(_FORWARDED.search(above[-1]))


def _trailing_quote(lines: list[str]) -> int | None:
    """Index of the first line of a trailing ``>``-quoted block, if the text ends in one."""
    start = None
    for index in range(len(lines) - 1, -1, -1):
        stripped = lines[index].strip()
        if not stripped:
            continue
        if stripped.startswith((">", "＞")):
            start = index
        else:
            break
    return start


def strip_quoted(text: str) -> Split:
    """Cut ``text`` at the first reply-history marker (see the module docstring)."""
    lines = text.split("\n")
    cut, marker = None, None
    for index in range(len(lines)):
        marker = _marker(lines, index)
        if marker is not None:
            cut = index
            break
    if cut is None:
        cut = _trailing_quote(lines)
        marker = "quote" if cut is not None else None
    if cut is None:
        return Split(text)
    kept = "\n".join(lines[:cut]).rstrip()
    if not kept.strip():
        return Split(text)
    return Split(kept, "\n".join(lines[cut:]).strip(), marker)
