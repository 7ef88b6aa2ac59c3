"""The access log's vocabulary: what was read or done, and the names of the actors that
are not OS users (gateway/store/audit.py keeps the log). In the model so every layer,
the channels' own commands included, names an action the same way without the store."""

from __future__ import annotations

from enum import StrEnum

ACTOR_API = "api"  # the pull API's bearer token (api.token)
ACTOR_OPS = "ops"  # the operator token (ops.token)
ACTOR_PUBLIC = "public"  # a route without a token (the Open311 read)


class AuditAction(StrEnum):
    """What was read or done. Stable names: the log is kept for months and filtered on."""

    FEED_READ = "feed.read"  # GET /v1/cases: a range of the pull feed
    CASE_READ = "case.read"  # GET /v1/cases/{code}: one case with its status history
    ATTACHMENT_READ = "attachment.read"  # GET /v1/attachments/{sha256}
    OPEN311_READ = "open311.read"  # GET /open311/v2/requests/{code}.json
    CASES_SHOW = "cases.show"  # minsheng cases show
    QUARANTINE_LIST = "quarantine.list"  # minsheng quarantine list
    DLQ_LIST = "dlq.list"  # minsheng dlq list
    CALLS_OVERDUE = "calls.overdue"  # minsheng calls overdue (lists callers' numbers)
    SUBJECT_EXPORT = "subject.export"  # minsheng subject export (a person's data)
    SUBJECT_ERASE = "subject.erase"  # minsheng subject erase
