"""Shared text helpers of the opinion channel: HTML → text, post times, relevance."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from normalizers.common.html_text import html_to_text
from normalizers.opinion.post_time import parse_post_time
from normalizers.opinion.relevance import Relevance, check

TZ = ZoneInfo("Asia/Shanghai")
NOW = datetime(2020, 8, 2, 16, 30, tzinfo=TZ)


# -- HTML to text ------------------------------------------------------------------------


def test_paragraphs_kept_scripts_and_styles_dropped() -> None:
    html = """<html><head><title>标题不算正文</title><style>p { color: red }</style></head>
    <body><div class="post"><p>第一段
        继续<b>加粗</b></p>段后文字<script>alert("x")</script>
    <p>第二段<br>换行&nbsp;&amp;&#x4E2D;&lt;b&gt;</p><!-- 注释 --><noscript>请开启脚本</noscript>
    </div></body></html>"""
    assert html_to_text(html) == "第一段 继续加粗\n\n段后文字\n\n第二段\n换行 &中<b>"


def test_tables_lists_and_pre() -> None:
    html = ("<table><tr><td>路名</td><td>问题</td></tr><tr><td>正阳路</td><td>积水</td></tr>"
            "</table><ul><li>一<li>二</ul><pre>a\n  b</pre>")
    assert html_to_text(html) == "路名 问题\n正阳路 积水\n\n一\n二\n\na\nb"


def test_malformed_and_deeply_nested_markup() -> None:
    assert html_to_text("<p>未闭合 <div>嵌套 <span>很深") == "未闭合\n\n嵌套 很深"
    assert html_to_text("<div>" * 5000 + "深处的字" + "</div>" * 10) == "深处的字"
    assert html_to_text("</div></p>孤立的结束标签<b>") == "孤立的结束标签"


def test_plain_text_and_urls_pass_without_warnings() -> None:
    # BeautifulSoup warns about input that looks like a URL or a file name; pytest
    # turns warnings into errors here, so this also proves none is raised.
    assert html_to_text("http://forum.example.org/thread-1.html") == \
        "http://forum.example.org/thread-1.html"
    assert html_to_text("  纯文本\n\n\n\n两段  ") == "纯文本\n\n两段"
    assert html_to_text('<?xml version="1.0"?><p>xml 声明</p>') == "xml 声明"
    assert html_to_text("") == ""


def test_bytes_are_decoded_by_the_bytes() -> None:
    page = '<meta charset="gb2312"><p>正阳路路灯不亮</p>'.encode()
    assert html_to_text(page) == "正阳路路灯不亮"
    assert html_to_text("<p>朱镕基路积水</p>".encode("gbk"), "text/html; charset=gb2312") == \
        "朱镕基路积水"


# -- post times --------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "formats", "expected"), [
    ("2020-7-19", ["%Y-%m-%d"], datetime(2020, 7, 19, tzinfo=TZ)),
    ("2020-8-2 13:11", [], datetime(2020, 8, 2, 13, 11, tzinfo=TZ)),
    ("发表于 2020-7-30 10:05:01", [], datetime(2020, 7, 30, 10, 5, 1, tzinfo=TZ)),
    ("2019年11月20日 09:30", [], datetime(2019, 11, 20, 9, 30, tzinfo=TZ)),
    ("２０２０－０７－１９", [], datetime(2020, 7, 19, tzinfo=TZ)),
    ("8-1", ["%m-%d"], datetime(2020, 8, 1, tzinfo=TZ)),
    ("12-31", ["%m-%d"], datetime(2019, 12, 31, tzinfo=TZ)),  # not in the future: last year
    ("8-1", [], datetime(2020, 8, 1, tzinfo=TZ)),
    ("16:09", ["%H:%M"], datetime(2020, 8, 2, 16, 9, tzinfo=TZ)),
    ("昨天 12:30", [], datetime(2020, 8, 1, 12, 30, tzinfo=TZ)),
    ("3 小时前", [], NOW - timedelta(hours=3)),
    ("3\u00a0天前", [], NOW - timedelta(days=3)),
    ("刚刚", [], NOW),
    ("2019-11", ["%H:%M", "%m-%d", "%Y-%m"], datetime(2019, 11, 1, tzinfo=TZ)),
    ("Mon, 02 Nov 2020 22:15:00 +0800", [], datetime(2020, 11, 2, 22, 15, tzinfo=TZ)),
    ("2021-09-06T16:45:00Z", [], datetime(2021, 9, 7, 0, 45, tzinfo=TZ)),
    ("2020-02-30", [], None),
    ("不是日期", [], None),
    ("", [], None),
    (None, [], None),
])
def test_post_times(text: str | None, formats: list[str], expected: datetime | None) -> None:
    assert parse_post_time(text, formats, tz=TZ, now=NOW) == expected


def test_year_less_29_february() -> None:
    now = datetime(2021, 3, 1, tzinfo=TZ)  # 2021 has no 29 February
    assert parse_post_time("02-29", ["%m-%d"], tz=TZ, now=now) is None
    leap = datetime(2020, 3, 1, tzinfo=TZ)
    assert parse_post_time("02-29", ["%m-%d"], tz=TZ, now=leap) == datetime(2020, 2, 29,
                                                                            tzinfo=TZ)


# -- relevance ---------------------------------------------------------------------------


def test_relevance_include_and_exclude() -> None:
    rules = Relevance(include=["城阳", "正阳路"], exclude=["广告", "招聘"])
    assert check(rules, "正阳路夜市油烟", "").relevant
    assert check(rules, "无关标题", "正文里提到城阳区").relevant
    verdict = check(rules, "驾照换证流程", "请问在哪里办")
    assert not verdict.relevant and verdict.reason == "no include keyword"
    verdict = check(rules, "【广告】城阳装修", "")
    assert not verdict.relevant and verdict.keyword == "广告"


def test_relevance_folds_case_width_and_blanks() -> None:
    rules = Relevance(include=["Wanda", "正阳路"])
    assert check(rules, "ＷＡＮＤＡ 广场").relevant
    assert check(rules, "正阳\n路积水").relevant
    assert check(rules, "正阳\u3000路积水").relevant
    assert check(Relevance(), "anything").relevant
    assert not Relevance().active


def test_blank_keywords_are_refused() -> None:
    with pytest.raises(ValueError, match="blank"):
        Relevance(include=["城阳", "  "])
