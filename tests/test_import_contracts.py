"""The import contracts in pyproject.toml hold on the tree, and a back-arrow breaks the
build with a message that names the rule (lint-imports on a copy of the packages)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"
pytestmark = pytest.mark.skipif(not LINT_IMPORTS.exists(), reason="import-linter not installed")


def lint(where: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(LINT_IMPORTS), "--no-cache"], cwd=where, capture_output=True,
                          text=True, timeout=120, check=False)


def copy_of_the_packages(tmp_path: Path) -> Path:
    for package in ("gateway", "adapters", "normalizers"):
        shutil.copytree(ROOT / package, tmp_path / package,
                        ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def test_the_tree_keeps_every_contract() -> None:
    result = lint(ROOT)
    assert result.returncode == 0, result.stdout
    assert "0 broken" in result.stdout


def test_an_adapter_importing_the_store_names_the_rule(tmp_path: Path) -> None:
    tree = copy_of_the_packages(tmp_path)
    with open(tree / "adapters" / "web_mailbox.py", "a", encoding="utf-8") as fh:
        fh.write("\nfrom gateway.store import journal  # noqa: E402\n")
    result = lint(tree)
    assert result.returncode != 0
    assert "Adapters never import the store" in result.stdout
    assert "adapters.web_mailbox -> gateway.store" in result.stdout


def test_a_typing_only_back_arrow_counts(tmp_path: Path) -> None:
    tree = copy_of_the_packages(tmp_path)
    with open(tree / "gateway" / "model" / "schema.py", "a", encoding="utf-8") as fh:
        fh.write("\nfrom typing import TYPE_CHECKING  # noqa: E402\n\n"
                 "if TYPE_CHECKING:\n    from gateway.intake.pipeline import Intake\n")
    result = lint(tree)
    assert result.returncode != 0
    assert "gateway.model is not allowed to import gateway.intake" in result.stdout
