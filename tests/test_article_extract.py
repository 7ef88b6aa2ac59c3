"""Generic article extraction that finds the article (``normalizers.opinion.article``), on the
project's own fixtures modelled on real government and finance pages: a gazette page
whose only other text is the site's URL, a finance page whose disclaimer must not win,
a page whose ``<meta>`` date differs from the document's 成文日期."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner

from adapters.opinion.cli import sites
from adapters.opinion.sites import read_html
from gateway.model.normalize import NormalizerContext
from gateway.model.schema import RawRecord
from normalizers.opinion.article import extract_article, main_text
from normalizers.opinion.article_meta import find_date
from normalizers.opinion.article_text import is_boilerplate, largest_sentence_block, sentence_chars
from normalizers.opinion.html_page import normalize

ROOT = Path(__file__).parent.parent
PAGES = Path(__file__).parent / "fixtures" / "html" / "extract"
TZ = ZoneInfo("Asia/Shanghai")
RECEIVED = datetime(2024, 1, 2, 12, 0, tzinfo=TZ)
GAZETTE_FIRST = "各省、自治区、直辖市人民政府，国务院各部委、各直属机构："
FINANCE_FIRST = "6月8日，多家国有大型银行下调了人民币存款挂牌利率，其中活期存款利率下调5个基点。"


@pytest.fixture(autouse=True)
def _in_the_repository(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)


def _extract(name: str) -> dict[str, str]:
    result = CliRunner().invoke(sites, ["extract", "--file", str(PAGES / name)],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    article: dict[str, str] = json.loads(result.stdout)
    return article


def test_gazette_page_gives_the_document_and_its_written_date() -> None:
    article = _extract("gazette.html")
    assert article["title"] == "国务院办公厅关于加强城市供水安全保障工作的通知"
    assert article["published"] == "2007-04-05"  # 成文日期, not the page's 2023 date
    assert article["text"].startswith(GAZETTE_FIRST)
    assert "三、建立供水水质督察制度" in article["text"]
    for noise in ("www.gov.cn", "版权所有", "打印本页", "关闭窗口", "分享到", "ICP备"):
        assert noise not in article["text"]
    assert article["kind"] == "article"


def test_finance_page_gives_the_article_not_its_disclaimer() -> None:
    article = _extract("finance.html")
    assert article["title"] == "多家银行下调存款利率 专家：理财资金或流向债市"
    assert article["published"] == "2023-06-08 17:42"  # under the title, not <meta>'s 06-09
    assert article["text"].startswith(FINANCE_FIRST)
    assert article["text"].endswith("但投资者仍需注意利率波动的风险。")
    for noise in ("免责声明", "责任编辑", "下载客户端", "Copyright"):
        assert noise not in article["text"]


def test_a_thin_first_text_falls_back_to_the_article() -> None:
    """trafilatura's whole text was the site's URL, or the disclaimer: both are thin."""
    soup = read_html((PAGES / "gazette.html").read_bytes())
    assert main_text(soup, "www.gov.cn", str(soup), None).startswith(GAZETTE_FIRST)
    soup = read_html((PAGES / "finance.html").read_bytes())
    disclaimer = "免责声明：本文仅代表作者个人观点，与本网站无关。投资有风险，入市需谨慎。"
    assert main_text(soup, disclaimer, str(soup), None).startswith(FINANCE_FIRST)


def test_the_page_normalizer_uses_the_same_extraction() -> None:
    raw = RawRecord(channel="opinion", source="gov", source_ref="http://www.gov.example/a.html",
                    payload=(PAGES / "gazette.html").read_bytes(), content_type="text/html",
                    received_at=RECEIVED,
                    metadata={"url": "http://www.gov.example/a.html", "page": "detail",
                              "fields": {}})
    draft = normalize(raw, NormalizerContext("gov", TZ, {}))
    assert draft.subject == "国务院办公厅关于加强城市供水安全保障工作的通知"
    assert draft.body.startswith(GAZETTE_FIRST)
    assert draft.post is not None
    assert draft.post.published_at == datetime(2007, 4, 5, tzinfo=TZ)


@pytest.mark.parametrize("line", [
    "免责声明：本文仅代表作者个人观点", "版权所有：中国政府网", "责任编辑：张三", "【打印本页】",
    "【关闭窗口】", "分享到：", "www.gov.cn", "http://www.gov.cn/zhengce/", "Copyright © 2023",
    "京ICP备05070218号", "【打印】", "关闭", "举报", "相关新闻：", "延伸阅读",
    "All Rights Reserved 新浪公司 版权所有",
])
def test_boilerplate_lines(line: str) -> None:
    assert is_boilerplate(line)
    assert sentence_chars(line) == 0


def test_prose_is_not_boilerplate() -> None:
    assert not is_boilerplate("记者从多家银行网点了解到，三年期定期存款利率降幅较大。")
    assert not is_boilerplate("关闭了三天的菜市场今天重新开门。")
    assert not is_boilerplate("打印机一直卡纸，营业厅说要等一周。")
    assert sentence_chars("检查发现隐患 17 处，已当场督促整改。") > 0


def test_dates_the_page_states() -> None:
    title = "某某通知"
    assert find_date(f"{title}\n发布时间：2019-09-07 13:43:45 来源", title, None) \
        == "2019-09-07 13:43:45"
    assert find_date(f"{title}\n发布时间：10-0812:00", title, "2019-10-08") == "2019-10-08 12:00"
    assert find_date(f"{title}\n发布时间：18-03-0823:16", title, None) == "2018-03-08 23:16"
    assert find_date(f"{title}\n2019年11月25日 16:04:30 来源", title, "2020-01-01") \
        == "2019-11-25 16:04:30"
    assert find_date("成文日期：2007年04月05日\n发布日期：2023年10月23日", title, "2023-10-23") \
        == "2007-04-05"
    assert find_date(f"{title}\n没有日期", title, "2023-10-23") == "2023-10-23"


def test_largest_block_of_sentences() -> None:
    text = ("首页\n新闻\n第一段很短。\n导航\n"
            "这是正文的第一句话，讲的是城市供水。\n\n这是正文的第二句话，讲的是管网改造。\n"
            "版权所有")
    assert largest_sentence_block(text) == (
        "这是正文的第一句话，讲的是城市供水。\n\n这是正文的第二句话，讲的是管网改造。")


def test_a_short_post_is_kept_whole() -> None:
    """A citizen's short post is thin and still the post: no fallback replaces it."""
    html = ("<html><head><title>路灯坏了</title></head><body><h1>路灯坏了</h1>"
            "<div class='post'><p>小区门口路灯坏了三天。</p></div></body></html>")
    article = extract_article(read_html(html.encode()))
    assert article.text == "小区门口路灯坏了三天。"
    assert article.title == "路灯坏了"


def test_a_label_before_the_headline_is_not_the_title() -> None:
    html = ("<html><head><title>最不愁吃肉的国家：顿顿有肉吃 - 头条</title></head><body>"
            "<h2 class='title'><span>原创</span> 最不愁吃肉的国家：顿顿有肉吃</h2>"
            "<div><p>这个国家的牧场比城市还多，家家户户的餐桌上几乎每天都有牛羊肉，"
            "当地人说吃肉就像吃饭一样平常。</p></div></body></html>")
    assert extract_article(read_html(html.encode())).title == "最不愁吃肉的国家：顿顿有肉吃"


def test_a_deeply_nested_page_is_read() -> None:
    """Broken pages nest elements thousands deep: nothing here recurses per level."""
    depth, post = 3000, "路面塌陷已经一周，车辆绕行很不方便，希望尽快修复。"
    html = f"<html><body>{'<div>' * depth}<p>{post}</p>{'</div>' * depth}</body></html>"
    assert extract_article(read_html(html.encode())).text == post
