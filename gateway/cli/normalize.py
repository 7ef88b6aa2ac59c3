"""``minsheng normalize``: one normalizer on a raw sample, dry (docs/email.md, docs/phone.md)."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path

import click

from gateway.cli.common import echo_json, load_or_exit
from gateway.model.errors import Rejected
from gateway.model.normalize import NormalizerContext
from gateway.model.schema import CHANNELS, RawRecord
from gateway.support import registry
from gateway.support.config import SourceConfig

# `minsheng normalize` exits: 0 a complaint, 1 a rejection, 2 a bad config or usage,
# 3 a mail the gateway's mail filters set aside (journaled `filtered`, no case).
EXIT_REJECTED = 1
EXIT_FILTERED = 3
EMAIL_FORMAT = "email"  # the registry's name of the e-mail normalizer
EMAIL_ADAPTER = "imap_email"  # and of the e-mail adapter, whose filters it applies


@click.command()
@click.option("--format", "fmt", required=True, help="normalizer name, e.g. web_form")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--content-type", help="media type of FILE (default: from its extension)")
@click.option("--channel", type=click.Choice(CHANNELS), default=None)
@click.option("--source", "source_name", default="dry-run",
              help="source whose options apply (e-mail: also its own_addresses)")
@click.option("--config", "config_path", type=click.Path(path_type=Path), default=None,
              help="read the source's options and time zone from this config")
def normalize(fmt: str, file: Path, content_type: str | None, channel: str | None,
              source_name: str, config_path: Path | None) -> None:
    """Run one normalizer on a raw sample and say what the gateway would do with it.

    \b
    Exit status:
      0  a complaint: the draft is printed as JSON
      1  rejected: {"rejected": [...]} names the fields and reasons
      2  a bad option or config
      3  e-mail only: filtered, no case (an auto-reply, a bounce, a read receipt,
         the gateway's own mail, a configured sender, a newsletter unless the source
         tags them): {"filtered": {"filter", "signal", "reason"}}, what the IMAP
         source journals
    """
    try:
        fn = registry.normalizer(fmt)
    except LookupError as exc:
        raise click.UsageError(str(exc)) from None
    context, source = _normalizer_context(source_name, config_path)
    guessed = {".json": "application/json", ".eml": "message/rfc822", ".xml": "application/xml",
               ".html": "text/html", ".txt": "application/x-www-form-urlencoded"}
    raw = RawRecord(
        channel=channel or "web",  # type: ignore[arg-type]
        source=source_name, source_ref=file.name, payload=file.read_bytes(),
        content_type=content_type or guessed.get(file.suffix, "application/octet-stream"),
        received_at=datetime.now(UTC), metadata={"file": str(file)},
    )
    if fmt == EMAIL_FORMAT:
        filtered = _mail_filtered(raw.payload, source)
        if filtered is not None:
            echo_json({"filtered": filtered})
            sys.exit(EXIT_FILTERED)
    try:
        draft = fn(raw, context)
    except Rejected as exc:
        echo_json({"rejected": exc.as_list()})
        sys.exit(EXIT_REJECTED)
    click.echo(draft.model_dump_json(indent=2))


def _normalizer_context(source_name: str,
                        config_path: Path | None) -> tuple[NormalizerContext, SourceConfig | None]:
    """The named source's options and the time zone from the config, if one is given;
    and the source's config (``None`` without one)."""
    if config_path is None:
        return NormalizerContext(source_name), None
    config = load_or_exit(config_path)
    if source_name == "dry-run":
        return NormalizerContext(source_name, config.tz), None
    try:
        source = config.source(source_name)
    except KeyError:
        known = ", ".join(s.name for s in config.sources) or "none"
        raise click.UsageError(
            f"{config_path} has no source {source_name!r} (sources: {known})"
        ) from None
    from gateway.server.app import binding_for

    return binding_for(config, source).context, source  # with the adapter's resources


def _mail_filtered(payload: bytes, source: SourceConfig | None) -> dict[str, str] | None:
    """What the IMAP source journals for a mail its filters set aside (``None``: a
    possible complaint), asked of the e-mail adapter through the registry, with the
    source's options (own addresses, sender patterns, newsletters) when it is an e-mail
    source (the defaults without one)."""
    options = source.options if source is not None and source.adapter == EMAIL_ADAPTER else {}
    verdict: dict[str, str] | None = registry.adapter_class(EMAIL_ADAPTER).set_aside(
        payload, options)
    return verdict
