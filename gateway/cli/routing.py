"""``minsheng classify | route | deadline | report``: train and measure the classifier,
explain routing, compute a due date, write the weekly report (docs/routing.md)."""

from __future__ import annotations

import asyncio
import csv
import sys
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import get_args

import click

from gateway.cli.common import config_option, echo_json, json_option, load_or_exit, with_store
from gateway.cli.status import table
from gateway.model.errors import ConfigError
from gateway.model.schema import CHANNELS
from gateway.reports.data import Week, WeeklyReport
from gateway.reports.mail import mail_report
from gateway.reports.statuses import case_statuses
from gateway.reports.weekly import last_full_week, render, weekly_report
from gateway.routing.classifier import load_model, train
from gateway.routing.deadlines import due_at
from gateway.routing.evaluation import Evaluation, LabelledData, cross_validate, evaluate
from gateway.routing.evaluation import read_labelled as read_csv
from gateway.routing.hints import RoutingHints
from gateway.routing.rules import Matter
from gateway.routing.taxonomy import load_taxonomy
from gateway.support.config import GatewayConfig
from gateway.support.mail import Mailer, MailError
from gateway.support.mail_config import check_address
from gateway.support.routing_config import ReportFormat

DEFAULT_MODEL = Path("var/classifier.skops")


def _config_or_defaults(config_path: Path) -> GatewayConfig:
    """The config when there is one; tools that need only its time zone and working-day
    settings run without it too."""
    return load_or_exit(config_path) if config_path.exists() else GatewayConfig()


def _or_exit(exc: Exception) -> None:
    click.echo(str(exc), err=True)
    sys.exit(2)


def _labelled(path: Path, text_cols: str, label_col: str) -> LabelledData:
    try:
        return read_csv(path, [c.strip() for c in text_cols.split(",")], label_col)
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise click.BadParameter(str(exc), param_hint="--from") from None


data_options = [
    click.option("--from", "source", required=True,
                 type=click.Path(exists=True, dir_okay=False, path_type=Path),
                 help="labelled history, UTF-8 CSV"),
    click.option("--text-cols", required=True,
                 help="text columns, subject first: 留言主题,留言详情"),
    click.option("--label-col", required=True, help="the label column, e.g. 一级分类"),
]


def with_data_options(command: Callable[..., None]) -> Callable[..., None]:
    for option in reversed(data_options):
        command = option(command)
    return command


@click.group()
def classify() -> None:
    """Train and measure the classifier (分类模型)."""


@classify.command("train")
@with_data_options
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=DEFAULT_MODEL,
              show_default=True, help="model file to write")
@click.option("--taxonomy", "taxonomy_path", type=click.Path(exists=True, path_type=Path),
              help="taxonomy whose class names are prior knowledge (default: the config's)")
@config_option
def classify_train(source: Path, text_cols: str, label_col: str, out: Path,
                   taxonomy_path: Path | None, config_path: Path) -> None:
    """Train on a labelled CSV and write a versioned model file."""
    data = _labelled(source, text_cols, label_col)
    path = taxonomy_path or _config_or_defaults(config_path).taxonomy.path
    try:
        priors = load_taxonomy(path).priors(set(data.labels)) if path else {}
    except ConfigError as exc:
        _or_exit(exc)
    model = train(data.texts, data.labels, priors, source=source.name)
    model.save(out)
    click.echo(f"{out}: {model.name}, {len(data.texts)} rows, classes "
               f"{', '.join(model.metadata['classes'])}")


@classify.command("eval")
@with_data_options
@click.option("--model", "model_path", type=click.Path(exists=True, path_type=Path),
              help="measure this model on the file")
@click.option("--folds", type=click.IntRange(2, 20), help="cross-validate a new model instead")
@click.option("--taxonomy", "taxonomy_path", type=click.Path(exists=True, path_type=Path),
              help="with --folds: taxonomy names as prior knowledge")
@json_option
def classify_eval(source: Path, text_cols: str, label_col: str, model_path: Path | None,
                  folds: int | None, taxonomy_path: Path | None, as_json: bool) -> None:
    """Accuracy, macro-F1, per-class precision/recall and the confusion matrix."""
    if (model_path is None) == (folds is None):
        raise click.UsageError("give either --model MODEL or --folds N")
    data = _labelled(source, text_cols, label_col)
    try:
        if model_path is not None:
            model = load_model(model_path)
            predicted = [str(p) for p in model.pipeline.predict(data.texts)]
            result = evaluate(data.labels, predicted)
        else:
            priors = load_taxonomy(taxonomy_path).priors(set(data.labels)) \
                if taxonomy_path else {}
            result = cross_validate(data, lambda x, y: train(x, y, priors).pipeline.predict,
                                    folds or 5)
    except ConfigError as exc:
        _or_exit(exc)
    if as_json:
        echo_json(result.as_json())
    else:
        click.echo(_eval_table(result))


def _eval_table(result: Evaluation) -> str:
    head = f"accuracy 准确率 {result.accuracy:.3f}   macro-F1 {result.macro_f1:.3f}"
    scores = table(["class 分类", "precision", "recall"],
                   [[c, f"{p:.3f}", f"{r:.3f}"] for c, p, r in
                    zip(result.classes, result.precision, result.recall, strict=True)], {1, 2})
    short = [str(i + 1) for i in range(len(result.classes))]
    matrix = table(["true \\ predicted", *short],
                   [[f"{i + 1} {c}", *row] for i, (c, row) in
                    enumerate(zip(result.classes, result.confusion, strict=True))],
                   set(range(1, len(short) + 1)))
    return f"{head}\n\n{scores}\n\nconfusion 混淆矩阵\n{matrix}"


@classify.command("export-feedback")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True)
@config_option
def classify_export_feedback(out: Path, config_path: Path) -> None:
    """The case platform's final categories as training rows (subject, body, label).

    Read from the status history (docs/downstream.md): the latest ``category`` the
    platform sent per case; cases without one are not exported."""
    config = load_or_exit(config_path)
    rows = with_store(config, lambda store: case_statuses(store).final_categories())
    with out.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["case_code", "subject", "body", "label"])
        writer.writerows([r.case_code, r.subject, r.body, r.category] for r in rows)
    click.echo(f"{out}: {len(rows)} rows")
    if not rows:
        click.echo("没有办理结果分类 No final categories: no status update with a "
                   "category has been received yet.", err=True)


@click.group()
def route() -> None:
    """Routing rules (分派规则)."""


@route.command("explain")
@click.argument("code", required=False)
@click.option("--text", help="complaint text; classified by the model when CODE is not given")
@click.option("--address", help="address of the matter")
@click.option("--district", help="district code of the matter")
@click.option("--channel", type=click.Choice(CHANNELS))
@config_option
def route_explain(code: str | None, text: str | None, address: str | None,
                  district: str | None, channel: str | None, config_path: Path) -> None:
    """Which rule fires for a class (CODE) and/or a text, and why the others did not."""
    from gateway.server.app import routing_hints

    if code is None and text is None:
        raise click.UsageError("give a class CODE, --text, or both")
    config = load_or_exit(config_path)
    try:
        hints = routing_hints(config)
    except ConfigError as exc:
        _or_exit(exc)
    if hints.rules is None:
        raise click.UsageError("the config names no routing rules (routing.rules)")
    code = code or _classified(hints, text or "")
    matter = Matter(class_code=code, subject="", body=text or "", address=address,
                    district=district, channel=channel)  # type: ignore[arg-type]
    for verdict in hints.rules.explain(matter):
        mark = "✔ fires 命中" if verdict.matched else "✘ no 未命中"
        click.echo(f"{mark}  {verdict.rule}")
        for check in verdict.checks:
            click.echo(f"    {'✔' if check.held else '✘'} {check.detail}")
    decided = hints.rules.route(matter)
    click.echo(f"→ {decided.department} (rule {decided.rule}: {decided.reason})" if decided
               else "→ 无匹配规则 no rule and no taxonomy department")


def _classified(hints: RoutingHints, text: str) -> str | None:
    """The class the model gives ``text`` (shown, whatever its confidence)."""
    if hints.model is None or hints.taxonomy is None:
        click.echo("class: none (no classifier model or taxonomy in the config)")
        return None
    label, confidence = hints.model.predict("", text)
    code = hints.taxonomy.resolve(label)
    click.echo(f"class: {code} {label} (confidence {confidence:.2f})")
    return code


@click.command("deadline")
@click.option("--from", "start", required=True, type=click.DateTime(
    ["%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%dT%H:%M%z", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d"]),
    help="submission time, e.g. 2024-02-09T10:00:00+08:00 (no offset: local time)")
@click.option("--working-days", type=click.IntRange(0, 365), help="default: deadlines' default")
@config_option
def deadline(start: datetime, working_days: int | None, config_path: Path) -> None:
    """The due time: working days counted with public holidays and 调休."""
    config = _config_or_defaults(config_path)
    settings = config.deadlines
    if start.tzinfo is None:
        start = start.replace(tzinfo=config.tz)
    days = settings.default_working_days if working_days is None else working_days
    due = due_at(start, days, config.tz, settings.end_of_day)
    click.echo(f"{due.isoformat()}  ({due.date()} 下班前 end of the working day, "
               f"{days} working days 工作日)")


@click.group()
def report() -> None:
    """Reports for the leadership (报告)."""


@report.command("weekly")
@click.option("--week", help="ISO week, e.g. 2026-W48 (default: last week)")
@click.option("--format", "fmt", type=click.Choice(get_args(ReportFormat)), default="html",
              show_default=True)
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path),
              help="file to write (default: standard output; xlsx needs --out)")
@click.option("--mail-to", multiple=True, metavar="ADDR",
              help="mail the report now through the config's smtp block (repeatable); "
                   "nothing is printed then unless --out is given")
@config_option
def report_weekly(week: str | None, fmt: ReportFormat, out: Path | None,
                  mail_to: tuple[str, ...], config_path: Path) -> None:
    """Intake by channel, class and district, hot topics, repeat rate, overdue cases."""
    config = load_or_exit(config_path)
    try:
        chosen = Week.parse(week) if week else last_full_week(datetime.now(config.tz), config.tz)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--week") from None
    if fmt == "xlsx" and out is None:
        raise click.UsageError("--format xlsx needs --out FILE")
    recipients = _recipients(config, mail_to)
    now = datetime.now(config.tz)
    built = with_store(config, lambda store: weekly_report(store, chosen, config.tz, now))
    if out is not None:
        out.write_bytes(render(built, fmt))
        click.echo(f"{out}: weekly report {chosen} ({fmt})", err=True)
    elif not recipients:
        click.echo(render(built, fmt).decode("utf-8"), nl=False)
    if recipients:
        _mail_now(config, built, recipients)


def _recipients(config: GatewayConfig, mail_to: tuple[str, ...]) -> list[str]:
    """The --mail-to addresses, checked like the config's ``reports.email_to``."""
    if mail_to and config.smtp is None:
        raise click.UsageError("--mail-to needs the smtp block in the config "
                               "(docs/configuration.md#smtp)")
    try:
        return [check_address(a) for a in dict.fromkeys(mail_to)]
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--mail-to") from None


def _mail_now(config: GatewayConfig, report: WeeklyReport, recipients: list[str]) -> None:
    assert config.smtp is not None  # _recipients refused --mail-to without it
    mailer = Mailer(config.smtp)
    try:
        sent = asyncio.run(mail_report(mailer, report, recipients, config.reports.email_attach))
    except MailError as exc:
        click.echo(f"周报未发送 The report was not mailed: {exc.reason}", err=True)
        sys.exit(1)
    click.echo(f"周报已发送 weekly report {report.week} mailed to {len(recipients)} "
               f"recipient(s), {sent.message_id}", err=True)
