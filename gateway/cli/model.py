"""``minsheng schema`` and ``minsheng code``: the canonical complaint and its case codes
(docs/case-codes.md)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from gateway.cli.common import config_option, echo_json, load_or_exit
from gateway.model.schema import complaint_json_schema


@click.group()
def code() -> None:
    """Case codes."""


@code.command("check")
@click.argument("case_code")
@click.option("--region", help="the centre's region prefix (default: from --config if found)")
@config_option
def code_check(case_code: str, region: str | None, config_path: Path) -> None:
    """Exit 0 if CASE_CODE is a valid case code, 1 saying why otherwise."""
    from gateway.model.casecode import InvalidCaseCode, parse_code

    if region is None and config_path.exists():
        region = load_or_exit(config_path).region_code
    try:
        parsed = parse_code(case_code, region)
    except InvalidCaseCode as exc:
        click.echo(f"invalid: {exc}")
        sys.exit(1)
    click.echo(f"valid: region {parsed.region}, date {parsed.day}, channel {parsed.channel}, "
               f"sequence {parsed.sequence}")


@click.command()
def schema() -> None:
    """Print the JSON Schema of the canonical complaint (schema v1)."""
    echo_json(complaint_json_schema())
