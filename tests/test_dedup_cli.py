"""``minsheng clusters top`` and ``minsheng dedup explain`` as operators read them."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import click
import pytest
import yaml
from click.testing import CliRunner

from gateway.cli.dedup import clusters, dedup_group, parse_since
from gateway.intake.pipeline import IntakeResult
from gateway.store import Store
from tests.conftest import TEST_PRIVACY
from tests.test_dedup_store import LAMP, NOISE, NOISE_AGAIN, make_intake, raw


def build(tmp_path: Path, store_url: str) -> tuple[Path, list[IntakeResult]]:
    """A store with a repeat, a cluster of three and a lone case; its config file."""
    config = tmp_path / "gateway.yaml"
    config.write_text(yaml.safe_dump({"store": {"url": store_url}, "privacy": TEST_PRIVACY,
                                      "data_dir": str(tmp_path / "var")}))
    now = datetime.now(UTC) - timedelta(minutes=30)

    async def fill() -> list[IntakeResult]:
        store = Store.from_url(store_url)
        await store.start()
        try:
            intake = make_intake(store)
            sent = [("hotline", NOISE, "+8613800138000"), ("web", NOISE_AGAIN, "+8613800138000"),
                    ("web", NOISE, "+8613900139001"), ("web", NOISE, "+8613900139002"),
                    ("web", LAMP, "+8613700137000")]
            return [await intake.submit(raw(source, body, at=now + timedelta(seconds=i),
                                            phone=phone))
                    for i, (source, body, phone) in enumerate(sent)]
        finally:
            await store.close()

    return config, asyncio.run(fill())


def run(group: click.Group, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(group, list(args))
    return result.exit_code, result.output


def test_clusters_top_and_explain(tmp_path: Path, store_url: str) -> None:
    config, results = build(tmp_path, store_url)
    call, repeat, _, second_neighbour, lone = results
    assert [r.outcome for r in results] == ["new", "repeat", "related", "related", "new"]
    cluster = f"CL-{call.case_code}"

    code, out = run(clusters, "top", "--since", "2h", "--config", str(config))
    assert code == 0
    header, row = out.splitlines()
    assert header.startswith("聚类 cluster\t新增 recent")
    assert row.startswith(f"{cluster}\t3\t3\t{call.case_code}\t{second_neighbour.case_code}")
    assert NOISE[:20] in row

    code, out = run(clusters, "top", "--since", "1m", "--config", str(config))
    assert (code, out.split(" ")[0]) == (0, "自")  # nothing since a minute ago
    assert "no clusters since then" in out

    code, out = run(dedup_group, "explain", repeat.case_code or "", "--config", str(config))
    assert code == 0
    assert out.splitlines()[0] == f"{repeat.case_code}: 重复件 (repeat)"
    assert f"匹配案件 matched case:   {call.case_code}" in out
    assert "tel:+86138****8000" in out

    code, out = run(dedup_group, "explain", call.case_code or "", "--config", str(config))
    assert f"{cluster}（首件 first case）, 3 件 cases" in out

    code, out = run(dedup_group, "explain", (lone.case_code or "").lower(),
                    "--config", str(config))
    assert code == 0 and "no similar enough case within the window" in out

    code, out = run(clusters, "top", "--since", "yesterday", "--config", str(config))
    assert code == 2 and "24h or 7d" in out


def test_parse_since() -> None:
    now = datetime(2024, 5, 6, 12, 0, tzinfo=UTC)
    tz = ZoneInfo("Asia/Shanghai")
    assert parse_since("24h", tz, now) == now - timedelta(hours=24)
    assert parse_since(" 7D ", tz, now) == now - timedelta(days=7)
    assert parse_since("30m", tz, now) == now - timedelta(minutes=30)
    assert parse_since("2024-05-01", tz, now) == datetime(2024, 5, 1, tzinfo=tz)
    assert parse_since("2024-05-01T08:00Z", tz, now) == datetime(2024, 5, 1, 8, tzinfo=UTC)
    with pytest.raises(click.BadParameter):
        parse_since("last week", tz, now)
