"""A third-party plugin adds an adapter and a sink through entry points alone.

tests/plugin_example is a package of its own (its pyproject.toml declares the entry
points ``minsheng.adapters: kiosk`` and ``minsheng.sinks: csv_file``). It is installed
the way an installer lays it out — the package plus a ``*.dist-info`` with its
``entry_points.txt`` — into a directory put on ``sys.path``, so
``importlib.metadata.entry_points`` (what the registry reads) finds it; nothing in the
gateway names it. A gateway configured with ``adapter: kiosk`` and ``kind: csv_file``
then takes a submission through the real HTTP endpoint and delivers it to the CSV file.
"""

from __future__ import annotations

import asyncio
import csv
import shutil
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from gateway.server.app import Gateway
from gateway.support import registry
from tests.conftest import base_url, gateway_config

PLUGIN = Path(__file__).parent / "plugin_example"
TOKEN = "kiosk-secret"


def install(project: Path, target: Path) -> None:
    """Lay out ``project`` in ``target`` as an installer does: its packages and a
    dist-info with METADATA and entry_points.txt (from its pyproject.toml)."""
    meta = tomllib.loads((project / "pyproject.toml").read_text(encoding="utf-8"))
    name, version = meta["project"]["name"], meta["project"]["version"]
    for package in meta["tool"]["setuptools"]["packages"]:
        shutil.copytree(project / package, target / package)
    info = target / f"{name.replace('-', '_')}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n", encoding="utf-8")
    lines = []
    for group, entries in meta["project"]["entry-points"].items():
        lines.append(f"[{group}]")
        lines.extend(f"{key} = {value}" for key, value in entries.items())
    (info / "entry_points.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")


@pytest.fixture
def plugin(tmp_path: Path) -> Iterator[Path]:
    target = tmp_path / "site"
    target.mkdir()
    install(PLUGIN, target)
    sys.path.insert(0, str(target))
    registry._table.cache_clear()  # the registry reads entry points once per process
    try:
        yield target
    finally:
        sys.path.remove(str(target))
        registry._table.cache_clear()
        for module in [m for m in sys.modules if m.split(".")[0] == "minsheng_kiosk"]:
            del sys.modules[module]


def test_the_registry_lists_the_plugins_names(plugin: Path) -> None:
    assert "kiosk" in registry.names("adapter")
    assert "csv_file" in registry.names("sink")
    assert registry.adapter_class("kiosk").__module__ == "minsheng_kiosk.adapter"


async def test_a_submission_goes_through_the_plugin_adapter_and_sink(
    plugin: Path, tmp_path: Path, store_url: str,
) -> None:
    out = tmp_path / "cases.csv"
    config = gateway_config(
        tmp_path, store_url,
        sources=[{"name": "hall", "adapter": "kiosk", "token": TOKEN, "hall": "城阳区政务大厅"}],
        sinks=[{"name": "ledger", "kind": "csv_file", "path": str(out),
                "poll_interval_s": 0.2}],
    )
    gw = Gateway(config)
    await gw.start()
    try:
        async with httpx.AsyncClient(base_url=base_url(gw)) as client:
            refused = await client.post("/intake/hall", json={"content": "路灯不亮"})
            answer = await client.post(
                "/intake/hall", headers={"Authorization": f"Bearer {TOKEN}"},
                json={"name": "王先生", "phone": "13800138000", "subject": "路灯不亮",
                      "content": "正阳路路灯三天不亮。"})
        assert refused.status_code == 401
        assert answer.status_code == 202
        code = answer.json()["case_code"]
        rows = await _rows(out, 1)
    finally:
        await gw.stop()
    assert rows == [["case", code, "web", "路灯不亮"]]


async def _rows(path: Path, want: int, timeout: float = 10.0) -> list[list[str]]:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        text = path.read_text(encoding="utf-8") if path.exists() else ""
        rows = list(csv.reader(text.splitlines()))
        if len(rows) >= want or asyncio.get_running_loop().time() > deadline:
            return rows
        await asyncio.sleep(0.05)
