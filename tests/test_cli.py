"""The ``minsheng`` command line: code check, schema, check-config, normalize."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from gateway.cli import main
from gateway.model.casecode import format_code
from gateway.model.schema import Attachment, CallInfo, Complaint, Location, Reporter
from gateway.support import registry

KNOWN_ADAPTERS = ", ".join(registry.names("adapter"))
KNOWN_FORMATS = ", ".join(registry.names("normalizer"))

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "config" / "gateway.yaml"
FIXTURES = ROOT / "tests" / "fixtures" / "web"
CJK = re.compile(r"[\u4e00-\u9fff]")
DESIGN_FIELDS = {"case_code", "schema_version", "channel", "source", "source_ref",
                 "received_at", "reported_at", "reporter", "subject", "body", "location",
                 "attachments", "call", "category_hint", "tags", "dedup", "raw_ref"}


def cli(*args: str | Path) -> Result:
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture
def no_config(tmp_path: Path) -> Path:
    return tmp_path / "absent.yaml"


# --- code check --------------------------------------------------------------------------

def test_code_check_valid(no_config: Path) -> None:
    result = cli("code", "check", "CY-20191120-W-000123-7", "--config", no_config)
    assert result.exit_code == 0
    assert result.stdout.strip() == ("valid: region CY, date 2019-11-20, channel web, "
                                     "sequence 123")


@pytest.mark.parametrize(("code", "reason"), [
    ("CY-20191120-W-000132-7", "校验位不符"),       # two digits swapped
    ("CY-20191120-W-000128-7", "校验位不符"),       # one digit mistyped
    ("CY-20191120-P-000123-7", "校验位不符"),       # wrong channel
    ("CY-20191120-Q-000123-7", "渠道字母 Q 无效"),
    ("CY-20190230-W-000123-7", "日期 20190230 不存在"),
    ("CY-20191120-W-123-7", "格式不符"),
])
def test_code_check_invalid_says_why(no_config: Path, code: str, reason: str) -> None:
    result = cli("code", "check", code, "--config", no_config)
    assert result.exit_code == 1
    assert result.stdout.startswith("invalid: ")
    assert reason in result.stdout
    assert re.search(r"\([a-z][a-z ,.:0-9A-Z-]+\)", result.stdout)  # the English beside it


def test_code_check_region_from_option_and_from_config(tmp_path: Path) -> None:
    assert cli("code", "check", "CY-20191120-W-000123-7", "--region", "QD",
               "--config", tmp_path / "absent.yaml").exit_code == 1
    config = tmp_path / "gateway.yaml"
    config.write_text("region_code: QD\n", encoding="utf-8")
    result = cli("code", "check", "CY-20191120-W-000123-7", "--config", config)
    assert result.exit_code == 1
    assert "地区代码 CY 不是本中心的 QD" in result.stdout
    assert cli("code", "check", "QD-20191120-W-000123-7", "--config", config).exit_code == 0


def test_code_check_through_the_installed_script(tmp_path: Path) -> None:
    script = Path(sys.executable).parent / "minsheng"
    ok = subprocess.run([script, "code", "check", "CY-20191120-W-000123-7", "--region", "CY"],
                        capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert ok.returncode == 0, ok.stderr
    bad = subprocess.run([script, "code", "check", "CY-20191120-W-000123-8", "--region", "CY"],
                         capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert bad.returncode == 1
    assert "check character does not match" in bad.stdout


# --- schema ------------------------------------------------------------------------------

_JSON_TYPES = {"object": dict, "array": list, "string": str, "integer": int,
               "number": (int, float), "boolean": bool, "null": type(None)}


def _check(value: Any, schema: dict[str, Any], root: dict[str, Any], where: str) -> list[str]:
    """A small validator for the keywords pydantic emits; enough to catch a wrong schema."""
    if "$ref" in schema:
        name = schema["$ref"].removeprefix("#/$defs/")
        return _check(value, root["$defs"][name], root, where)
    if "anyOf" in schema:
        if any(not _check(value, s, root, where) for s in schema["anyOf"]):
            return []
        return [f"{where}: matches none of anyOf"]
    problems: list[str] = []
    kind = schema.get("type")
    if kind is not None:
        expected = _JSON_TYPES[kind]
        if not isinstance(value, expected) or (kind in ("integer", "number")
                                               and isinstance(value, bool)):
            return [f"{where}: not {kind}"]
    if "enum" in schema and value not in schema["enum"]:
        problems.append(f"{where}: not one of {schema['enum']}")
    if "const" in schema and value != schema["const"]:
        problems.append(f"{where}: not {schema['const']}")
    if "pattern" in schema and isinstance(value, str) and not re.search(schema["pattern"], value):
        problems.append(f"{where}: does not match {schema['pattern']}")
    if isinstance(value, dict):
        props = schema.get("properties", {})
        problems += [f"{where}.{k}: required" for k in schema.get("required", []) if k not in value]
        if schema.get("additionalProperties") is False:
            problems += [f"{where}.{k}: not allowed" for k in value if k not in props]
        for k, v in value.items():
            if k in props:
                problems += _check(v, props[k], root, f"{where}.{k}")
    if isinstance(value, list) and "items" in schema:
        for i, item in enumerate(value):
            problems += _check(item, schema["items"], root, f"{where}[{i}]")
    return problems


def _sample_complaint() -> dict[str, Any]:
    when = datetime(2019, 11, 20, 1, 30, tzinfo=UTC)
    complaint = Complaint(
        case_code=format_code("CY", date(2019, 11, 20), "phone", 7), channel="phone",
        source="hotline", source_ref="call-1", received_at=when, reported_at=when,
        reporter=Reporter(name="黄女士", phone="+8613800138000"), subject="路灯不亮",
        body="正阳路路灯不亮。", location=Location(address="城阳区正阳路", latitude=36.3),
        attachments=[Attachment(file_name="录音.mp3", media_type="audio/mpeg", size=3,
                                sha256="a" * 64, storage_ref="sha256:" + "a" * 64)],
        call=CallInfo(call_id="call-1", caller="+8613800138000", started_at=when,
                      talk_seconds=95),
        category_hint="城乡建设", tags=["路灯"], raw_ref="raw:1",
    )
    return dict(json.loads(complaint.model_dump_json()))


def test_schema_is_a_json_schema_with_the_design_fields() -> None:
    result = cli("schema")
    assert result.exit_code == 0
    schema = json.loads(result.stdout)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["type"] == "object"
    assert set(schema["properties"]) >= DESIGN_FIELDS
    assert {"case_code", "channel", "source", "source_ref", "received_at", "reported_at",
            "body", "raw_ref"} <= set(schema["required"])
    assert schema["additionalProperties"] is False
    refs = re.findall(r'"\$ref": "#/\$defs/([^"]+)"', result.stdout)
    assert refs and set(refs) <= set(schema["$defs"])
    channel = schema["properties"]["channel"]
    assert channel["enum"] == ["phone", "web", "email", "opinion"]
    assert schema["properties"]["schema_version"]["const"] == 1


def test_schema_accepts_a_real_complaint_and_refuses_broken_ones() -> None:
    schema = json.loads(cli("schema").stdout)
    sample = _sample_complaint()
    assert _check(sample, schema, schema, "$") == []
    broken: list[dict[str, Any]] = [
        {**sample, "channel": "fax"},
        {**sample, "schema_version": 2},
        {k: v for k, v in sample.items() if k != "body"},
        {**sample, "surprise": 1},
        {**sample, "reporter": {**sample["reporter"], "anonymous": "no"}},
        {**sample, "attachments": [{**sample["attachments"][0], "sha256": "xyz"}]},
        {**sample, "dedup": {"kind": "maybe"}},
    ]
    for doc in broken:
        assert _check(doc, schema, schema, "$"), doc


# --- check-config ------------------------------------------------------------------------

def test_check_config_accepts_the_shipped_file(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MINSHENG_API_TOKEN", raising=False)
    result = cli("check-config", "--config", SHIPPED)
    assert result.exit_code == 0
    assert result.stdout.strip().startswith(f"{SHIPPED}: ok (")


BROKEN = """\
region_code: CY
timezone: Asia/Beijing
server:
  listen: localhost
sources:
  - name: intake
    adapter: web_mailbox
  - name: web
    adapter: web_mailbox
    max_attachment_mb: ten
    token: ${MINSHENG_TEST_SURELY_UNSET_TOKEN}
  - name: mail
    adapter: imap_emial
sinks:
  - name: platform
    kind: http
    url: cases.example.gov.cn
colour: blue
"""


def test_check_config_lists_every_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MINSHENG_TEST_SURELY_UNSET_TOKEN", raising=False)
    path = tmp_path / "broken.yaml"
    path.write_text(BROKEN, encoding="utf-8")
    result = cli("check-config", "--config", path)
    assert result.exit_code == 2
    lines = result.stderr.splitlines()
    assert lines[0] == "invalid configuration:"
    assert sorted(lines[1:]) == sorted(f"  - {e}" for e in [
        "sources[1] (name=web): token: environment variable MINSHENG_TEST_SURELY_UNSET_TOKEN "
        "is not set",
        "timezone: unknown time zone 'Asia/Beijing'",
        "server.listen: must be HOST:PORT, e.g. 127.0.0.1:8080",
        "colour: unknown key",
        "sources[1] (name=web): max_attachment_mb: not a number",
        f"sources[2] (name=mail): unknown adapter 'imap_emial' (known: {KNOWN_ADAPTERS})",
        "sinks[0] (name=platform): url: String should match pattern '^https?://'",
    ])
    assert result.stdout == ""


def test_check_config_on_a_missing_file(tmp_path: Path) -> None:
    result = cli("check-config", "--config", tmp_path / "nope.yaml")
    assert result.exit_code == 2
    assert "cannot read" in result.stderr


# --- normalize ---------------------------------------------------------------------------

def test_normalize_prints_the_complaint() -> None:
    result = cli("normalize", "--format", "web_form", FIXTURES / "streetlight.json")
    assert result.exit_code == 0, result.output
    draft = json.loads(result.stdout)
    assert draft["channel"] == "web"
    assert draft["source"] == "dry-run"
    assert draft["source_ref"] == "wx-2019-11-20-0042"
    assert draft["reporter"]["phone"] == "+8613800138000"
    assert draft["reported_at"] == "2019-11-20T01:30:00Z"
    assert draft["body"].startswith("正阳路与长城路路口往东约 200 米")


def test_normalize_urlencoded_by_extension_and_by_option(tmp_path: Path) -> None:
    by_extension = cli("normalize", "--format", "web_form", FIXTURES / "noise.txt")
    assert by_extension.exit_code == 0
    assert json.loads(by_extension.stdout)["reporter"]["phone"] == "+8653288886666"
    copy = tmp_path / "form.body"
    copy.write_bytes((FIXTURES / "noise.txt").read_bytes())
    by_option = cli("normalize", "--format", "web_form", "--content-type",
                    "application/x-www-form-urlencoded", copy)
    assert by_option.exit_code == 0
    assert json.loads(by_option.stdout)["body"] == json.loads(by_extension.stdout)["body"]


def test_normalize_envelope_with_content_type() -> None:
    result = cli("normalize", "--format", "web_form", "--content-type",
                 "application/vnd.minsheng.form+json", FIXTURES / "envelope.json")
    assert result.exit_code == 0
    assert json.loads(result.stdout)["attachments"][0]["file_name"] == "垃圾桶.jpg"


def test_normalize_prints_the_rejection() -> None:
    result = cli("normalize", "--format", "web_form", FIXTURES / "broken.json")
    assert result.exit_code == 1
    rejected = json.loads(result.stdout)["rejected"]
    assert {e["field"] for e in rejected} == {"name", "phone", "email", "content", "anonymous",
                                              "submitted_at", "address"}
    for error in rejected:
        assert set(error) == {"field", "code", "zh", "en", "reason"}
        assert CJK.search(error["zh"]) and error["reason"] == f"{error['zh']} ({error['en']})"


def test_normalize_with_the_options_of_a_configured_source(tmp_path: Path) -> None:
    config = tmp_path / "gateway.yaml"
    config.write_text("sources:\n  - name: web\n    adapter: web_mailbox\n"
                      "    max_name_chars: 2\n", encoding="utf-8")
    result = cli("normalize", "--format", "web_form", "--config", config, "--source", "web",
                 FIXTURES / "streetlight.json")
    assert result.exit_code == 1
    assert [e["code"] for e in json.loads(result.stdout)["rejected"]] == ["too_long"]
    unknown = cli("normalize", "--format", "web_form", "--config", config, "--source", "mail",
                  FIXTURES / "streetlight.json")
    assert unknown.exit_code == 2
    assert "has no source 'mail' (sources: web)" in unknown.stderr


# An e-mail sample goes through the IMAP source's mail filters first, as in the gateway: a
# filtered mail prints {"filtered": detail} (what the source journals) and exits 3.

EMAIL = ROOT / "tests" / "fixtures" / "email"


@pytest.mark.parametrize(("name", "detail"), [
    ("auto_reply.eml", {  # RFC 3834 header
        "filter": "auto_reply", "signal": "Auto-Submitted: auto-replied",
        "reason": "自动回复 (auto-reply): Auto-Submitted: auto-replied"}),
    ("out_of_office_zh.eml", {  # Foxmail out-of-office: only the (GBK) subject says so
        "filter": "auto_reply", "signal": "Subject: 自动回复：关于朝阳路红绿灯故障的转办单",
        "reason": "自动回复 (auto-reply): Subject: 自动回复：关于朝阳路红绿灯故障的转办单"}),
    ("bounce_dsn.eml", {  # a delivery-status notification
        "filter": "bounce", "signal": "multipart/report; report-type=delivery-status",
        "reason": "退信（投递失败通知） (bounce (delivery status notification)): "
                  "multipart/report; report-type=delivery-status"}),
    ("read_receipt.eml", {
        "filter": "receipt", "signal": "multipart/report; report-type=disposition-notification",
        "reason": "已读回执 (read receipt): "
                  "multipart/report; report-type=disposition-notification"}),
    ("self_sent.eml", {
        "filter": "self_sent", "signal": "X-Minsheng-Gateway header",
        "reason": "网关自己发出的邮件 (mail the gateway sent itself): X-Minsheng-Gateway header"}),
])
def test_normalize_email_says_the_mail_is_filtered(name: str, detail: dict[str, str]) -> None:
    result = cli("normalize", "--format", "email", "--channel", "email", EMAIL / name)
    assert result.exit_code == 3, result.output
    assert json.loads(result.stdout) == {"filtered": detail}


def test_normalize_email_complaint_still_normalizes() -> None:
    result = cli("normalize", "--format", "email", "--channel", "email",
                 EMAIL / "gbk_quoted_printable.eml")
    assert result.exit_code == 0, result.output
    draft = json.loads(result.stdout)
    assert "filtered" not in draft
    assert (draft["channel"], draft["subject"]) == ("email", "朝阳路红绿灯故障")
    assert draft["reporter"]["name"] == "李赟"


def test_normalize_email_reads_own_addresses_from_the_configured_source(
        tmp_path: Path) -> None:
    """A mail from the centre's own address is a complaint to a bare dry run, but the
    source that lists the address in ``own_addresses`` files it as ``self_sent``."""
    sample = EMAIL / "own_address.eml"
    bare = cli("normalize", "--format", "email", sample)
    assert bare.exit_code == 0, bare.output
    assert json.loads(bare.stdout)["reporter"]["email"] == "hotline@12345.example.cn"
    config = tmp_path / "gateway.yaml"
    config.write_text(
        "sources:\n"
        "  - name: mailbox\n    adapter: imap_email\n    host: mail.example.cn\n"
        "    username: tousu@example.cn\n    password: ${IMAP_PASSWORD}\n"
        "    own_addresses: [Hotline@12345.example.cn]\n"
        "  - name: archive\n    adapter: imap_email\n    host: mail.example.cn\n"
        "    username: old@example.cn\n    password: ${IMAP_PASSWORD}\n",
        encoding="utf-8")
    env = {"IMAP_PASSWORD": "secret"}

    def dry_run(source: str) -> Result:
        return CliRunner().invoke(main, ["normalize", "--format", "email", "--config",
                                         str(config), "--source", source, str(sample)],
                                  env=env, catch_exceptions=False)

    own = dry_run("mailbox")
    assert own.exit_code == 3, own.output
    assert json.loads(own.stdout)["filtered"] == {
        "filter": "self_sent", "signal": "From: hotline@12345.example.cn",
        "reason": "网关自己发出的邮件 (mail the gateway sent itself): "
                  "From: hotline@12345.example.cn"}
    other = dry_run("archive")  # no own_addresses there
    assert other.exit_code == 0, other.output


def test_normalize_filters_only_email() -> None:
    """The same auto-reply bytes given to another normalizer are not screened as mail."""
    result = cli("normalize", "--format", "generic_json", EMAIL / "auto_reply.eml")
    assert result.exit_code != 3
    assert "filtered" not in result.stdout


def test_normalize_help_documents_the_exit_statuses() -> None:
    result = cli("normalize", "--help")
    assert result.exit_code == 0
    assert "3  e-mail only: filtered, no case" in result.stdout


def test_normalize_unknown_format() -> None:
    result = cli("normalize", "--format", "fax", FIXTURES / "streetlight.json")
    assert result.exit_code == 2
    assert "unknown normalizer 'fax'" in result.stderr
