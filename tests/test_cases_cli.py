"""``minsheng cases show`` and ``minsheng cases import-status`` on both engines: a batch
file with errors is refused whole, naming every error with its line; a good one is
imported once (again: nothing new); the history prints as a table and as JSON."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from click.testing import CliRunner

from gateway.cli import main
from gateway.store import cases
from tests.conftest import TEST_PRIVACY, started_store

CODES = ("CY-20261204-W-000001-1", "CY-20261204-W-000002-2")
GOOD = (
    "case_code,status,at,department,text,category\n"
    f"{CODES[0]},accepted,2026-12-04T09:00:00+08:00,,,\n"
    f"{CODES[0]},assigned,2026-12-04T10:00:00+08:00,城管局,,\n"
    f'{CODES[0]},replied,2026-12-05T10:00:00+08:00,,"已清运，\n多行答复",城乡建设\n'
    f"{CODES[1].lower()},closed,2026-12-05T11:00:00Z,,,\n"
)
BAD = (
    "case_code,status,at,department,text,category\n"
    f"{CODES[0]},assigned,2026-12-04T10:00:00+08:00,,,\n"
    f"{CODES[0]},done,2026-12-04,,,\n"
    ",closed,2026-12-04T10:00:00+08:00,,,\n"
    f"{CODES[0]},closed,2026-12-04T10:00:00+08:00,,,,extra\n"
)


def prepare(tmp_path: Path, store_url: str) -> Path:
    async def fill() -> None:
        async with started_store(store_url) as store:
            await store.write(lambda tx: [
                cases.insert(tx, case_code=code, source="web", source_ref=str(n),
                             channel="web", raw_id=n + 1,
                             document=json.dumps({"case_code": code, "channel": "web",
                                                  "received_at": "2026-12-04T00:30:00Z"}))
                for n, code in enumerate(CODES)])

    asyncio.run(fill())
    config = tmp_path / "gateway.yaml"
    config.write_text(json.dumps({"store": {"url": store_url}, "privacy": TEST_PRIVACY,
                                  "data_dir": str(tmp_path)}),
                      encoding="utf-8")
    return config


def test_import_and_show(tmp_path: Path, store_url: str) -> None:
    config = prepare(tmp_path, store_url)
    runner = CliRunner()
    bad = tmp_path / "bad.csv"
    bad.write_text(BAD, encoding="utf-8")
    refused = runner.invoke(main, ["cases", "import-status", str(bad), "--config", str(config)])
    assert refused.exit_code == 1
    for expected in ("5 errors, nothing imported",
                     "line 2: department", "line 3: status", "line 3: at",
                     "line 4: case_code", "line 5: "):
        assert expected in refused.output, refused.output
    good = tmp_path / "good.csv"
    good.write_text(GOOD, encoding="utf-8-sig")  # a spreadsheet's BOM is fine
    first = runner.invoke(main, ["cases", "import-status", str(good), "--config", str(config)])
    again = runner.invoke(main, ["cases", "import-status", str(good), "--config", str(config)])
    assert first.exit_code == 0, first.output
    assert "4 imported, 0 already there" in first.output
    assert "0 imported, 4 already there" in again.output
    shown = runner.invoke(main, ["cases", "show", CODES[0].lower(), "--config", str(config)])
    assert shown.exit_code == 0, shown.output
    assert "城管局" in shown.output and "已清运， 多行答复" in shown.output
    as_json = runner.invoke(main, ["cases", "show", CODES[0], "--json", "--config",
                                   str(config)])
    history = json.loads(as_json.output)["status_history"]
    assert [e["status"] for e in history] == ["accepted", "assigned", "replied"]
    assert {e["origin"] for e in history} == {"import"}
    assert history[2]["text"] == "已清运，\n多行答复"


def test_unknown_case_and_bad_header(tmp_path: Path, store_url: str) -> None:
    config = prepare(tmp_path, store_url)
    runner = CliRunner()
    unknown = tmp_path / "unknown.csv"
    unknown.write_text("case_code,status,at\nCY-NOPE,closed,2026-12-04T10:00:00+08:00\n"
                       f"{CODES[1]},closed,2026-12-04T10:00:00+08:00\n", encoding="utf-8")
    refused = runner.invoke(main, ["cases", "import-status", str(unknown), "--config",
                                   str(config)])
    assert refused.exit_code == 1 and "line 2: case_code" in refused.output
    header = tmp_path / "header.csv"
    header.write_text("code,status,colour\n", encoding="utf-8")
    wrong = runner.invoke(main, ["cases", "import-status", str(header), "--config",
                                 str(config)])
    assert wrong.exit_code == 1
    assert "missing column 'case_code'" in wrong.output and "missing column 'at'" in wrong.output
    assert "unknown column 'colour'" in wrong.output
    shown = runner.invoke(main, ["cases", "show", CODES[1], "--config", str(config)])
    assert "No status received yet" in shown.output  # nothing of the refused files
    missing = runner.invoke(main, ["cases", "show", "CY-NOPE", "--config", str(config)])
    assert missing.exit_code == 1 and "no such case" in missing.output
