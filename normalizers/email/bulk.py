"""Weak signals of a mail: sent to many, through a list or a forwarding service.

``Precedence: bulk|list|junk``, the ``List-*`` headers (RFC 2369/2919) and ``X-Loop``
say how a mail travelled, not who wrote it: a citizen's reply forwarded by a list, or
a personal mail sent through a forwarding service, carries them too. So they never
decide that a mail is no complaint (``normalizers.email.filters`` does that on strong
signals only); they decide that the gateway must never answer it automatically
(RFC 3834 §2; Zammad treats them the same way). The draft records that with the tag
``no_auto_reply``, which the acknowledgement mail reads.

A *newsletter* is a mail with ``List-Unsubscribe`` and no personal signal (no reply or
forward subject, no ``In-Reply-To``/``References``): the source's ``newsletters``
option files it as a case tagged ``newsletter`` or sets it aside as ``filtered``.
"""

from __future__ import annotations

import re
from email.message import Message

from normalizers.email.headers import header_text, raw_header

NO_AUTO_REPLY_TAG = "no_auto_reply"
NEWSLETTER_TAG = "newsletter"
_BULK_PRECEDENCE = ("bulk", "list", "junk", "auto_reply")
_LIST_HEADERS = ("list-id", "list-unsubscribe", "list-post", "list-help", "list-subscribe",
                 "list-owner", "list-archive")
# "Re:", "Fwd:", "AW:", "WG:", "回复：", "转发：", "答复：", "[list] Re:"…
_PERSONAL_SUBJECT = re.compile(
    r"^\s*(?:\[[^\]]{1,60}\]\s*)?(?:[\[【]\s*)?(re|fwd?|aw|wg|sv|vs|回复|回覆|答复|转发|轉寄|转寄)"
    r"\s*(?:\[\d+\])?\s*[:：]",
    re.IGNORECASE,
)


def no_auto_reply_signal(msg: Message) -> str | None:
    """The header that says "never answer this automatically", or ``None``."""
    precedence = (raw_header(msg, "precedence") or "").strip().lower()
    if precedence in _BULK_PRECEDENCE:
        return f"Precedence: {precedence}"
    for name in _LIST_HEADERS:
        if raw_header(msg, name) is not None:
            return f"{name.title()} header"
    loop = raw_header(msg, "x-loop")
    if loop is not None:
        return f"X-Loop: {loop.strip()[:60]}"
    return None


def personal_signal(msg: Message) -> str | None:
    """What shows a person wrote this mail to someone: a reply or a forward."""
    if raw_header(msg, "in-reply-to") or raw_header(msg, "references"):
        return "In-Reply-To/References"
    subject = header_text(msg, "subject")
    if _PERSONAL_SUBJECT.match(subject):
        return f"Subject: {subject[:40]}"
    return None


def is_newsletter(msg: Message) -> bool:
    """``List-Unsubscribe`` without any personal signal."""
    return raw_header(msg, "list-unsubscribe") is not None and personal_signal(msg) is None


def bulk_tags(msg: Message) -> list[str]:
    """The tags the weak signals give a draft (see the module's docstring)."""
    tags = []
    if no_auto_reply_signal(msg) is not None:
        tags.append(NO_AUTO_REPLY_TAG)
    if is_newsletter(msg):
        tags.append(NEWSLETTER_TAG)
    return tags
