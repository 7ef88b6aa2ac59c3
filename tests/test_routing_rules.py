"""Taxonomy, routing rules (the seed centre's shared-bike example) and due dates in
working days: the files in config/routing, the loaders' errors, and their commands."""

from __future__ import annotations

from datetime import date, datetime, time
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner

from gateway.cli import main
from gateway.model.errors import ConfigError
from gateway.routing.deadlines import WorkCalendar, due_at
from gateway.routing.rules import Matter, load_rules
from gateway.routing.taxonomy import load_taxonomy

ROOT = Path(__file__).resolve().parents[1]
TAXONOMY = ROOT / "config" / "routing" / "taxonomy.yaml"
RULES = ROOT / "config" / "routing" / "rules.yaml"
SHANGHAI = ZoneInfo("Asia/Shanghai")
EOD = time(17, 30)


# -- taxonomy --------------------------------------------------------------------------


def test_example_taxonomy_inherits_department_and_service_level() -> None:
    taxonomy = load_taxonomy(TAXONOMY)
    assert taxonomy.path("CJ.SD.HEAT") == ["城乡建设", "供水供电供暖", "冬季采暖"]
    assert taxonomy.service_level("CJ.SD.HEAT") == "utility"
    assert taxonomy.service_level("CJ.WY") == "standard"
    assert taxonomy.department("CJ.SD.HEAT") == "市热力公司"
    assert taxonomy.department("JT.BIKE") == "交通运输局"  # from its parent
    assert taxonomy.resolve("交通运输") == "JT" and taxonomy.resolve("JT.BUS") == "JT.BUS"
    assert taxonomy.resolve("no such class") is None


def test_csv_taxonomy_by_levels_and_by_code_name_parent(tmp_path: Path) -> None:
    levels = tmp_path / "levels.csv"
    levels.write_text("一级分类,二级分类,三级分类\n城乡建设,安全生产,事故处理\n"
                      "城乡建设,安全生产,安全隐患\n交通运输,其他,其他\n", encoding="utf-8")
    by_levels = load_taxonomy(levels)
    assert by_levels.path("城乡建设/安全生产/安全隐患") == ["城乡建设", "安全生产", "安全隐患"]
    assert set(by_levels.priors({"城乡建设"})["城乡建设"].split()) == {
        "城乡建设", "安全生产", "事故处理", "安全隐患"}
    flat = tmp_path / "flat.csv"
    flat.write_text("code,name,parent,department\nA,城乡建设,,住建局\nA1,供水,A,\n",
                    encoding="utf-8")
    assert load_taxonomy(flat).department("A1") == "住建局"


@pytest.mark.parametrize(("classes", "message"), [
    ("- {code: A, name: x}\n- {code: A, name: y}", "appears twice"),
    ("- {code: A, name: x, parent: B}", "parent 'B' is unknown"),
    ("- {code: A, name: x, parent: B}\n- {code: B, name: y, parent: A}", "cycle"),
    ("- {code: A}", "Field required"),
])
def test_bad_taxonomy_is_a_config_error(tmp_path: Path, classes: str, message: str) -> None:
    path = tmp_path / "t.yaml"
    path.write_text(f"classes:\n{classes}\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=message):
        load_taxonomy(path)


# -- routing rules ---------------------------------------------------------------------


@pytest.mark.parametrize(("subject", "body", "address", "department", "rule"), [
    ("共享单车押金退不了", "注销账户三个月了押金99元还没退", None, "市场监督管理局",
     "bike-deposit"),
    ("共享单车逆行", "很多人骑共享单车在主干道逆行，非常危险", None, "公安局交通警察支队",
     "bike-reckless-riding"),
    ("单车挡路", "共享单车乱停在路中间", "正阳路与春阳路路口", "公安局交通警察支队",
     "bike-parking-carriageway"),
    ("单车挡路", "共享单车乱停放", "正阳路绿化带旁", "市政工程管理处",
     "bike-parking-municipal-works"),
    ("单车挡路", "小区门口共享单车堆放严重，影响通行", "城阳区正阳路128号", "城市管理局",
     "bike-parking-sidewalk"),
])
def test_shared_bike_example_of_the_seed_centre(
    subject: str, body: str, address: str | None, department: str, rule: str,
) -> None:
    rules = load_rules(RULES, load_taxonomy(TAXONOMY))
    routed = rules.route(Matter("JT.BIKE", subject, body, address=address, channel="web"))
    assert routed is not None
    assert (routed.department, routed.rule) == (department, rule)


@pytest.mark.parametrize("matter", [
    Matter("JT.BIKE", "共享单车押金退不了", "押金99元还没退", channel="web"),
    Matter("JT.BIKE", "单车挡路", "共享单车乱停放", address="正阳路绿化带旁", channel="phone"),
    Matter("CJ.SD.HEAT", "暖气不热", "家里暖气不热已经三天"),
    Matter(None, "", "某小区发生燃气泄漏", channel="opinion"),
    Matter("JY", "学校收费", "学校违规收取补课费", district="城阳区"),
    Matter(None, "", ""),
])
def test_the_fast_check_agrees_with_the_explained_one(matter: Matter) -> None:
    """Intake asks ``holds`` (short-circuit, no sentences); explain asks ``check``: for
    every rule of the example they must agree."""
    rules = load_rules(RULES, load_taxonomy(TAXONOMY))
    for rule in rules.rules:
        assert rules.holds(rule, matter) == all(c.held for c in rules.check(rule, matter))


def test_class_channel_and_taxonomy_fallback() -> None:
    rules = load_rules(RULES, load_taxonomy(TAXONOMY))
    heating = rules.route(Matter("CJ.SD.HEAT", "暖气不热", "家里暖气不热已经三天"))
    assert heating is not None
    assert (heating.department, heating.rule, heating.priority) == (
        "城市管理局", "utilities-outage", "high")
    blast = rules.route(Matter(None, "", "某小区发生燃气泄漏", channel="opinion"))
    assert blast is not None and blast.priority == "urgent"
    assert rules.route(Matter(None, "", "某小区发生燃气泄漏", channel="web")) is None
    school = rules.route(Matter("JY", "学校收费", "学校违规收取补课费"))
    assert school is not None
    assert (school.department, school.rule) == ("教育局", "taxonomy")


def test_explain_lists_every_rule_and_condition() -> None:
    rules = load_rules(RULES, load_taxonomy(TAXONOMY))
    verdicts = rules.explain(Matter("JT.BIKE", "押金", "共享单车押金不退"))
    assert verdicts[0].rule == "bike-deposit" and verdicts[0].matched
    assert [c.condition for c in verdicts[0].checks] == ["keywords", "regex"]
    reckless = next(v for v in verdicts if v.rule == "bike-reckless-riding")
    assert not reckless.matched
    assert [c.held for c in reckless.checks] == [False, True]


@pytest.mark.parametrize(("text", "message"), [
    ("rules:\n  - {name: a, when: {regex: '('}, department: d}", r"rules\[0\] when.regex"),
    ("rules:\n  - {name: a, when: {colour: red}, department: d}", r"rules\[0\] when.colour"),
    ("rules:\n  - {name: a, when: {}, department: d}\n  - {name: a, when: {}, department: e}",
     "unique"),
    ("rules: [", "not valid YAML"),
    ("- just a list", "'rules' list"),
])
def test_bad_rules_are_config_errors(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError, match=message):
        load_rules(path, None)


def test_route_explain_command(tmp_path: Path) -> None:
    config = tmp_path / "gateway.yaml"
    config.write_text(f"taxonomy: {{path: {TAXONOMY}}}\nrouting: {{rules: {RULES}}}\n",
                      encoding="utf-8")
    result = CliRunner().invoke(main, ["route", "explain", "JT.BIKE", "--text",
                                       "共享单车乱停放", "--address", "正阳路绿化带",
                                       "--config", str(config)])
    assert result.exit_code == 0, result.output
    assert "✘ no 未命中  bike-deposit" in result.output
    assert "✔ fires 命中  bike-parking-municipal-works" in result.output
    assert result.output.strip().endswith(
        "→ 市政工程管理处 (rule bike-parking-municipal-works: 正则 regex /(共享单车|单车).{0,30}"
        "(乱停|乱放|堆放|占道|挡)/ 匹配 matched '共享单车乱停'; 地址 address 匹配 matches "
        "['绿化带', '桥下', '地铁口'])")


# -- due dates -------------------------------------------------------------------------


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


def test_due_date_counts_holidays_and_adjusted_working_weekends() -> None:
    # Spring Festival 2024: 10–17 February off, Sunday 18 February a working day.
    assert due_at(at("2024-02-09T10:00:00+08:00"), 3, SHANGHAI, EOD) == at(
        "2024-02-20T17:30:00+08:00")
    assert due_at(at("2024-02-09T10:00:00+08:00"), 1, SHANGHAI, EOD) == at(
        "2024-02-18T17:30:00+08:00")


def test_late_or_day_off_submission_counts_from_the_next_working_day() -> None:
    # Friday 2024-03-08 after 17:30: counts from Monday 11th, due Thursday 14th.
    assert due_at(at("2024-03-08T18:00:00+08:00"), 3, SHANGHAI, EOD).date() == date(2024, 3, 14)
    assert due_at(at("2024-03-08T17:00:00+08:00"), 3, SHANGHAI, EOD).date() == date(2024, 3, 13)
    # Saturday: as if on Monday. UTC input is taken in the centre's zone (Monday 01:00).
    assert due_at(at("2024-03-09T10:00:00+08:00"), 1, SHANGHAI, EOD).date() == date(2024, 3, 12)
    assert due_at(at("2024-03-10T17:00:00+00:00"), 0, SHANGHAI, EOD).date() == date(2024, 3, 11)


def test_past_known_years_falls_back_to_monday_to_friday_and_warns_once() -> None:
    calendar = WorkCalendar()
    # 2099-01-02 is a Friday; 3 working days on: Wednesday 7th.
    assert due_at(at("2099-01-02T09:00:00+08:00"), 3, SHANGHAI, EOD, calendar).date() == date(
        2099, 1, 7)
    assert calendar.warned_years == {2099}


def test_deadline_command_prints_the_issue_example(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["deadline", "--from", "2024-02-09T10:00:00+08:00",
                                       "--working-days", "3", "--config",
                                       str(tmp_path / "absent.yaml")])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("2024-02-20T17:30:00+08:00  (2024-02-20 下班前 end of the")
