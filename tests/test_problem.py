"""Problem details stay valid JSON whatever a detail quotes from the request."""

from __future__ import annotations

import json

from gateway.support import problem


def test_a_lone_surrogate_in_a_detail_is_written_as_its_json_escape() -> None:
    response = problem.problem(404, "not-found", "未找到该案件 (no such case)", "CY-\ud800")
    assert response.body is not None
    raw = bytes(response.body)  # type: ignore[arg-type]
    raw.decode("utf-8")  # valid UTF-8
    assert json.loads(raw)["detail"] == "CY-\ud800"
    assert response.content_type == problem.PROBLEM_TYPE
