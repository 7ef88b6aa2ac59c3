"""E-mail channel: pull a mailbox over IMAP (aioimaplib) and turn each mail into a record.

``source`` is the adapter (what a poll does, post-actions, filtered and oversized mail,
IDLE), ``client`` one IMAP connection with its errors mapped to the source error
classes, ``options`` the configuration keys. The mail itself is read by the normalizer
``email`` (``normalizers/email.py``). See docs/email.md.
"""

from adapters.imap_email.options import ImapEmailOptions
from adapters.imap_email.source import ImapEmailSource

__all__ = ["ImapEmailOptions", "ImapEmailSource"]
