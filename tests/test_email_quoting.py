"""Reply history stripping (normalizers/email/quoting.py): Chinese and English client patterns,
and text that merely looks like them."""

from __future__ import annotations

import pytest

from normalizers.email.quoting import strip_quoted

NEW = "井盖还是没有修好，请尽快处理。"


@pytest.mark.parametrize(("history", "marker"), [
    ("-----原始邮件-----\n发件人: 12345热线\n这是上一封邮件", "separator"),
    ("------------------ 原始邮件 ------------------\n发件人: \"12345\"<h@x.cn>;\n"
     "发送时间: 2019年11月20日(星期三) 上午9:30\n收件人: \"我\"<me@qq.com>;\n主题: 回复",
     "separator"),
    ("---- 回复的原邮件 ----\n| 发件人 | 12345热线 |", "separator"),
    ("-----Original Message-----\nFrom: Hotline\nSent: Wednesday", "separator"),
    ("在 2019年11月20日 星期三 09:30，12345热线 <hotline@12345.example.cn> 写道：\n> 旧内容",
     "attribution"),
    ("在 2019-11-20 17:02:11，\"12345热线\" <hotline@12345.example.cn> 写道：\n> 旧内容",
     "attribution"),
    ("12345热线 <hotline@12345.example.cn> 于2019年11月20日周三 上午9:30写道：\n> 旧内容",
     "attribution"),
    ("On Wed, Nov 20, 2019 at 9:30 AM Hotline <hotline@12345.example.cn> wrote:\n> old",
     "attribution"),
    ("On Wed, Nov 20, 2019 at 9:30 AM Hotline <hotline@12345.example.cn>\nwrote:\n> old",
     "attribution"),
    ("发件人：12345热线 <hotline@12345.example.cn>\n发送时间：2019年11月20日 17:02\n"
     "收件人：王喆\n主题：回复：施工噪音\n\n旧内容", "header_block"),
    ("From: Hotline <hotline@12345.example.cn>\nSent: Wednesday, November 20, 2019 5:02 PM\n"
     "To: Wang Zhe\nSubject: RE: noise\n\nold", "header_block"),
    ("________________________________\nFrom: Hotline\nDate: 2019-11-20\nTo: me\n\nold",
     "separator"),
    ("> 您好，已派单。\n> 12345 热线", "quote"),
])
def test_history_is_cut_at_its_marker(history: str, marker: str) -> None:
    split = strip_quoted(f"{NEW}\n\n{history}")
    assert split.text == NEW
    assert split.marker == marker
    assert split.quoted == history.strip()


@pytest.mark.parametrize("text", [
    "发件人：张三，联系电话 13800138000。\n小区门口路灯坏了。",  # one label: not a header block
    "我在2019年写道路施工的事情时提到过……\n请处理。",  # "写道" inside a sentence
    "问题如下：\n> 这一行是我引用的通知原文\n我的意见是不合理。",  # an inline quote, not trailing
    "----- Forwarded message -----\nFrom: 物业 <wy@example.cn>\n通知：明天停水",  # forwarded
    "请看下面物业的通知，太不合理了。\n\n---------- Forwarded message ---------\n"
    "From: 物业 <wy@example.cn>\nDate: 2019年11月20日\nSubject: 停水\nTo: 业主\n\n明天停水",
])
def test_text_that_only_looks_like_history_is_kept(text: str) -> None:
    assert strip_quoted(text).text == text


def test_nothing_is_cut_when_nothing_would_remain() -> None:
    text = "-----原始邮件-----\n发件人: 物业\n发送时间: 今天\n主题: 停水通知\n明天停水"
    split = strip_quoted(text)
    assert split.text == text and split.quoted == "" and split.marker is None


def test_a_labelled_contact_number_in_the_body_is_the_reporters_phone() -> None:
    from normalizers.email import contact_phone

    assert contact_phone("请尽快处理。联系电话：13800138000") == "+8613800138000"
    assert contact_phone("手机 138 0013 8000 谢谢") == "+8613800138000"
    assert contact_phone("Tel: 0532-88886666") == "+8653288886666"
    assert contact_phone("订单号 13800138000") is None  # not labelled as a phone
    assert contact_phone("电话：12345") is None  # not a citizen's number
