"""schemathesis against a live gateway: every operation of its own ``/openapi.json``,
with data that fits the document (positive) and data that breaks it (negative), signed
as each source expects so the requests get past authentication.

Checks on every answer: no 5xx, the status, the content type, the headers and the body
are the documented ones (so a refusal is problem+json); after the run, the quarantine
holds nothing (what a fuzzer sends is input: it may be refused, never taken for a bug).
Bounded and repeatable: ``EXAMPLES`` cases per operation and mode, derandomized.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.fuzz_gateway import CTI_TOKEN, FuzzGateway, credentials, running_gateway

pytestmark = pytest.mark.slow

EXAMPLES = int(os.environ.get("MINSHENG_FUZZ_EXAMPLES", "12"))  # per operation and mode
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_headers_conformance, response_schema_conformance]
# mod_json_cdr's base64 encoding posts an ordinary form whose `cdr` is base64.
schemathesis.serializer.alias("application/x-www-form-base64-encoded",
                              "application/x-www-form-urlencoded")


class SignedAuth(requests.auth.AuthBase):
    """Adds the credentials of the request's route once its body is final (an HMAC or
    Twilio signature covers the bytes sent)."""

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        body = request.body or b""
        raw = body.encode("utf-8") if isinstance(body, str) else bytes(body)
        request.headers.update(credentials(request.method or "", request.url or "",
                                           request.headers, raw))
        return request


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FuzzGateway]:
    with running_gateway(tmp_path_factory.mktemp("schemathesis")) as gateway:
        yield gateway


@pytest.fixture(scope="module")
def schema(live: FuzzGateway) -> Any:
    document = requests.get(f"{live.base_url}/openapi.json", timeout=30).json()
    return schemathesis.openapi.from_dict(document)


def operations(schema: Any, prefix: str) -> list[Any]:
    """The operations at ``prefix`` or under it."""
    found = [result.ok() for result in schema.get_all_operations()]
    return [op for op in found if op.path == prefix or op.path.startswith(prefix + "/")]


def fuzz(live: FuzzGateway, ops: list[Any]) -> Counter[tuple[str, int]]:
    """Run every operation in both modes; collect each operation's first failure so one
    broken route does not hide the others. Returns how often each operation answered
    each status."""
    assert ops, "no operation matched"
    session = requests.Session()
    failures: list[str] = []
    statuses: Counter[tuple[str, int]] = Counter()
    for op in ops:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            try:
                _fuzz_operation(live, session, op, mode, statuses)
            except Unsatisfiable:
                assert mode == GenerationMode.NEGATIVE  # nothing in it can be made invalid
            except Exception as exc:
                failures.append(f"{op.label} [{mode.value}]:\n{exc}")
    session.close()
    assert not failures, "\n\n".join(failures)
    return statuses


def _fuzz_operation(live: FuzzGateway, session: requests.Session, op: Any,
                    mode: GenerationMode, statuses: Counter[tuple[str, int]]) -> None:
    @settings(max_examples=EXAMPLES, derandomize=True, database=None, deadline=None,
              phases=[Phase.explicit, Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(case=op.as_strategy(generation_mode=mode))
    def run(case: Any) -> None:
        if case.path_parameters and "token" in case.path_parameters:
            case.path_parameters["token"] = CTI_TOKEN  # the fuzzer gets past the path token
        response = case.call(base_url=live.base_url, session=session, auth=SignedAuth(),
                             timeout=30)
        statuses[op.label, response.status_code] += 1
        case.validate_response(response, checks=CHECKS)

    run()


@pytest.mark.parametrize("path", [
    "/healthz", "/readyz", "/openapi.json", "/v1/cases", "/metrics", "/v1/status",
    "/ops/login",
    "/ops", "/open311", "/v1/lookup", "/lookup",
])
def test_core_operations(live: FuzzGateway, schema: Any, path: str) -> None:
    """The core's routes (``/v1/cases`` covers ``/v1/cases/{case_code}`` and its
    ``/status``, ``/ops`` the login and the static files, ``/open311`` both Open311 reads,
    ``/lookup`` the look-up page, its form post and its files)."""
    ops = operations(schema, path)
    if path == "/ops":
        ops = [op for op in ops if op.path != "/ops/login"]
    fuzz(live, ops)


def test_web_mailbox(live: FuzzGateway, schema: Any) -> None:
    fuzz(live, operations(schema, "/intake/web"))


def test_citizen_page(live: FuzzGateway, schema: Any) -> None:
    """The public web mailbox with its page: the page, its files and its intake."""
    fuzz(live, operations(schema, "/") + operations(schema, "/intake/citizen"))


@pytest.mark.parametrize("source", ["hotline-json", "hotline-fs", "hotline-cti",
                                    "hotline-twilio"])
def test_hotline(live: FuzzGateway, schema: Any, source: str) -> None:
    statuses = fuzz(live, operations(schema, f"/intake/{source}"))
    for label in {label for label, _ in statuses if label.startswith("POST")}:
        past_auth = sum(n for (op, status), n in statuses.items()
                        if op == label and status not in (401, 403))
        assert past_auth, f"{label}: every request was refused by authentication"


def test_nothing_was_quarantined(live: FuzzGateway) -> None:
    """Runs after the fuzzing above (same module, same gateway)."""
    left = live.open_quarantine()
    assert left == [], sorted({(e.source, str((e.detail or {}).get("error"))[:100])
                               for e in left})
