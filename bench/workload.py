"""What the intake benchmark sends: realistic web-mailbox submissions, and the wrk script.

Each request is a JSON submission like the centre's website posts to ``/intake/web``: a
Chinese name, a mobile number, a subject, 100–300 characters of Chinese content and an
address. Every request is a different submission, put together when it is sent, from
one of two kinds of text:

- **corpus** (preferred): random sentences of real citizen messages, read at run time
  from ``shared/data/citizen_messages`` beside the repository (see its README; nothing
  of it is copied into the repository), with their real subjects. The gateway's dedup
  compares texts by character shingles, so what it costs depends on how alike the texts
  are: real sentences give it real work.
- **synthetic**, when that folder is missing: phrase slots below (a place, a problem,
  how long, the impact, what was tried, a detail, the request, a closing), most with a
  number in them. Their vocabulary is small, so the texts are far more alike than real
  ones: the dedup index finds more and more candidates as the run goes on (dozens per
  submission after a few thousand cases), which makes the gateway slower than on real
  text.

Every request has its own phone number (``138`` + an 8-digit serial unique in the run),
so no submission is an exact duplicate or a repeat of another: each 2xx answer is a new
case (``related`` when its text is close to another citizen's). ``one_reporter`` sends
every submission from 13800138000 instead: one citizen writing thousands of times, the
worst case of the per-reporter dedup checks.

The same composition runs in Lua inside wrk (``wrk_script``) and in Python for
``bench/loadgen.py`` (``compose``).
"""

from __future__ import annotations

import csv
import json
import random
import re
from dataclasses import dataclass
from pathlib import Path

ONE_REPORTER_PHONE = "13800138000"
NAMES = [
    "黄女士", "王先生", "李女士", "张先生", "刘女士", "陈先生", "赵女士", "孙先生",
    "周女士", "吴先生", "郑女士", "冯先生", "杨女士", "朱先生", "许女士", "何先生",
]
STREETS = ["正阳路", "长城路", "春阳路", "黑龙江中路", "重庆北路", "文阳路", "兴阳路", "仙山路"]
# (subject, sentence): the subject goes with the problem.
PROBLEMS = [
    ("共享单车乱停放", "共享单车大量堆放在人行道上，把盲道都占满了，"),
    ("夜间施工噪音扰民", "附近工地每天夜里施工到凌晨，打桩机的声音特别大，"),
    ("道路积水", "一下雨路面就严重积水，最深的地方能没过脚踝，"),
    ("路灯不亮", "小区门口这一段的路灯坏了很久，晚上漆黑一片，"),
    ("垃圾清运不及时", "垃圾桶经常满溢出来，垃圾散落一地也没人清运，"),
    ("楼道堆放杂物", "楼道里堆满了纸箱、旧家具和电动车，"),
    ("公交站台破损", "公交站台的顶棚玻璃碎了一大块，座椅也坏了，"),
    ("餐馆油烟扰民", "楼下餐馆的油烟直接排向居民窗户，"),
    ("占道经营", "流动摊贩长期占用人行道和非机动车道经营，"),
    ("井盖缺失", "路边一个雨水井盖丢失了，只用几根树枝围着，"),
    ("供暖温度不达标", "今年供暖以来室内温度一直达不到十六度，"),
    ("小区停水", "小区经常突然停水，事先没有任何通知，"),
    ("违章建筑", "有住户在楼顶私自搭建彩钢房，还在往外扩，"),
    ("广场舞噪音", "广场舞的音响声音开得很大，每天跳到很晚，"),
    ("电动车违规充电", "有人从楼上窗户拉电线下来给电动车充电，"),
    ("树木遮挡信号灯", "路口的行道树长得太密，把红绿灯都挡住了，"),
]
# (probability, lowest, highest number, phrases): a phrase may hold one %d.
SLOTS: list[tuple[float, int, int, list[str]]] = [
    (1.0, 1, 399, [
        "我住在城阳区正阳路%d号小区，", "我是长城路%d号的住户，", "我家在春阳路%d号院，",
        "黑龙江中路%d号附近，", "重庆北路%d号公交站旁边，", "文阳路%d号商业街一带，",
        "我们小区在兴阳路%d号，", "流亭街道仙山路%d号楼下，", "惜福镇街道%d号村口，",
        "上马街道办事处东侧约%d米处，", "国城路与双元路交叉口往北%d米，",
        "夏庄街道云头崮社区%d号楼，", "棘洪滩街道青大工业园%d号门外，",
        "城阳区政府西侧约%d米的小路上，", "河套街道%d号安置小区，", "红岛街道韩家社区%d号附近，",
    ]),
    (1.0, 0, 0, ["%PROBLEM%"]),
    (0.9, 2, 50, [
        "早晚高峰的时候行人只能绕到机动车道上走，来往车辆很多，非常危险，",
        "我们小区有%d栋楼，住的大多是老年人，晚上出门都要打着手电筒，",
        "白天还好，到了晚上问题更加突出，周围的住户基本都睡不好觉，",
        "前些天一位七十多岁的老人路过时差点摔倒，幸好被路人扶住了，",
        "附近就是菜市场和小学，人流量非常大，车辆进出也很频繁，",
        "我们自己也想过办法，但是这个问题靠居民自己根本解决不了，",
        "大约有%d户人家受到影响，很多住户已经在业主群里抱怨了很多次，",
        "问题最严重的时候连救护车和消防车都没法正常通过，",
        "家里有刚出生的孩子和卧床的老人，实在是受不了这样的情况，",
        "从我家窗户就能看到现场，情况一天比一天严重，",
        "这里离地铁站只有%d0米，每天经过的上班族和学生非常多，",
        "天气转暖以后情况更加严重，周边居民意见非常大，",
    ]),
    (1.0, 2, 30, [
        "这种情况已经持续了%d天，", "从上个月%d号开始就一直这样，", "已经有%d个星期了，",
        "前后已经反映了%d次，", "差不多%d天了还是没有人管，", "最近%d天尤其严重，",
        "到今天已经是第%d天了，", "这个问题前后存在%d个月了，",
    ]),
    (1.0, 0, 0, [
        "老人和孩子出行很不方便，", "严重影响周边居民的正常休息，", "晚上出行存在很大的安全隐患，",
        "夏天气味难闻，还招来很多蚊虫，", "一旦发生火灾后果不堪设想，", "车辆和行人通行都很困难，",
        "雨天候车的市民没有地方避雨，", "家里的老人孩子经常被吵醒，", "已经有人在这里摔倒受伤了，",
        "给周边商户的经营造成了很大影响，", "上下班高峰的时候经常堵车，",
        "孩子上学放学路上很危险，",
    ]),
    (0.8, 2, 9, [
        "我们曾多次向社区反映，但至今没有答复。", "物业说这件事不归他们管。",
        "打过%d次电话都说会处理，但一直没有结果。", "社区工作人员来看过一次，之后就没有下文了。",
        "邻居们对此意见都很大。", "之前在网上也反映过，一直没有回复。",
        "附近的商户也反映过同样的问题。", "楼里%d户居民联名写过信，没有回音。",
    ]),
    (0.8, 2, 23, [
        "每天%d点前后最严重。", "涉及周边大约%d户居民。", "附近有%d所学校和幼儿园。",
        "昨天现场有%d辆车被堵住。", "最近一周已经发生了%d次。", "我拍了%d张照片可以提供。",
        "楼里至少有%d位行动不便的老人。", "每天%d点以后尤其明显。",
    ]),
    (1.0, 0, 0, [
        "希望有关部门尽快派人到现场查看，协调解决。",
        "恳请相关单位加强日常巡查，建立长效管理机制。",
        "请尽快处理并给予答复。", "希望政府部门重视这个问题，早日解决。",
        "请相关执法部门依法查处。", "希望能尽快安排维修。", "请督促责任单位限期整改。",
        "希望12345热线帮忙协调解决。",
    ]),
    (0.5, 0, 0, [
        "如需核实情况，可以随时与我电话联系。", "谢谢！", "谢谢政府部门对我们居民生活的关心。",
        "盼复。",
    ]),
]
MIN_CHARS, MAX_CHARS = 100, 300
PAD = "以上情况属实，麻烦尽快处理，谢谢。"


def phone(serial: int, one_reporter: bool) -> str:
    return ONE_REPORTER_PHONE if one_reporter else f"138{serial % 100_000_000:08d}"


def _synthetic(rng: random.Random) -> tuple[str, str]:
    subject, problem = PROBLEMS[rng.randrange(len(PROBLEMS))]
    content = ""
    for chance, low, high, phrases in SLOTS:
        if rng.random() < chance:
            phrase = phrases[rng.randrange(len(phrases))].replace("%PROBLEM%", problem)
            content += phrase.replace("%d", str(rng.randint(low, high)))
    while len(content) < MIN_CHARS:
        content += PAD
    return subject, content


@dataclass(frozen=True)
class Corpus:
    """Sentences (8–120 characters) and subjects of real messages, safe to splice into
    JSON as they are (no quote, backslash or control character)."""

    sentences: list[str]
    subjects: list[str]

    def save(self, folder: Path) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "sentences.txt").write_text("\n".join(self.sentences), encoding="utf-8")
        (folder / "subjects.txt").write_text("\n".join(self.subjects), encoding="utf-8")
        return folder

    @classmethod
    def read(cls, folder: Path) -> Corpus:
        return cls((folder / "sentences.txt").read_text(encoding="utf-8").split("\n"),
                   (folder / "subjects.txt").read_text(encoding="utf-8").split("\n"))


CORPUS_FILES = ("附件4_full_replies.csv", "附件2_sample495_labeled.csv")
_SENTENCE = re.compile(r"[^。！？；!?;]+[。！？；!?;]?")
_UNSAFE = re.compile(r'["\\\x00-\x1f\x7f\u2028\u2029]')


def _clean(text: str) -> str:
    text = text.replace("_x000D_", "").replace("\u3000", " ").replace("\xa0", " ")
    return re.sub(r"\s+", "", text)  # Excel escapes and scraped whitespace


def load_corpus(folder: Path) -> Corpus | None:
    """The sentences of the citizen messages in ``folder``, or None if there are none."""
    sentences: set[str] = set()
    subjects: set[str] = set()
    for name in CORPUS_FILES:
        path = folder / name
        if not path.exists():
            continue
        with path.open(encoding="utf-8", newline="") as fh:
            for row in csv.DictReader(fh):
                for sentence in _SENTENCE.findall(_clean(row.get("留言详情") or "")):
                    if 8 <= len(sentence) <= 120 and not _UNSAFE.search(sentence):
                        sentences.add(sentence)
                subject = _clean(row.get("留言主题") or "")
                if 4 <= len(subject) <= 60 and not _UNSAFE.search(subject):
                    subjects.add(subject)
    if not sentences or not subjects:
        return None
    return Corpus(sorted(sentences), sorted(subjects))


def _from_corpus(rng: random.Random, corpus: Corpus) -> tuple[str, str]:
    content = ""
    while len(content) < MIN_CHARS:  # at most 99 + 120 characters
        content += corpus.sentences[rng.randrange(len(corpus.sentences))]
    return corpus.subjects[rng.randrange(len(corpus.subjects))], content


def compose(rng: random.Random, serial: int, one_reporter: bool = False,
            corpus: Corpus | None = None) -> str:
    """One submission's JSON body (UTF-8 text, not ASCII-escaped)."""
    subject, content = _from_corpus(rng, corpus) if corpus else _synthetic(rng)
    doc = {
        "name": NAMES[rng.randrange(len(NAMES))], "phone": phone(serial, one_reporter),
        "subject": subject, "content": content[:MAX_CHARS],
        "address": f"城阳区{STREETS[rng.randrange(len(STREETS))]}{rng.randint(1, 399)}号",
    }
    return json.dumps(doc, ensure_ascii=False)


def serial_base(run: int, worker: int, per_worker: int) -> int:
    """Serials of one load run and worker: unique across the runs of one benchmark."""
    return run * 10_000_000 + worker * per_worker


def _lua_strings(values: list[str]) -> str:
    for value in values:
        if any(c in value for c in '"\\]\n') or ("%" in value and value.count("%d") != 1
                                                 and value != "%PROBLEM%"):
            raise ValueError(f"phrase not safe to splice into JSON/Lua: {value!r}")
    return "{" + ", ".join(f'"{v}"' for v in values) + "}"


def _lua_ints(phrases: list[str]) -> str:
    """Characters of each phrase without its ``%d`` (the number's digits are added)."""
    return "{" + ", ".join(str(len(p.replace("%d", ""))) for p in phrases) + "}"


_LUA = """\
-- Generated by bench/workload.py: POSTs one new web-mailbox submission per request and
-- reports, besides wrk's own summary, how many requests were sent and got a 2xx.
-- Script arguments: the run number (serials, and so phone numbers, differ between runs)
-- and, for real text, the folder of sentences.txt and subjects.txt (Corpus.save).
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local NAMES = %(names)s
local STREETS = %(streets)s
local SUBJECTS = %(subjects)s
local PROBLEMS = %(problems)s
local PROBLEM_CHARS = %(problem_chars)s
local SLOTS = {
%(slots)s
}
local ONE_REPORTER = %(one_reporter)s
local MIN_CHARS, PAD, PAD_CHARS = %(min_chars)d, "%(pad)s", %(pad_chars)d
local SENTENCES, SENTENCE_CHARS, REAL_SUBJECTS = nil, nil, nil
local threads = {}
local base = 0
counter = 0
sent = 0
ok = 0

function setup(thread)
  thread:set("index", #threads)
  table.insert(threads, thread)
end

local function chars(text)  -- UTF-8 bytes that do not continue a character
  return select(2, string.gsub(text, "[^\\128-\\191]", ""))
end

local function read_lines(path)
  local lines = {}
  for line in io.lines(path) do table.insert(lines, line) end
  return lines
end

function init(args)
  local run = tonumber(args[1] or "0")
  base = run * 10000000 + index * 1000000
  math.randomseed(run * 7919 + index * 104729 + 1)
  if args[2] then
    SENTENCES = read_lines(args[2] .. "/sentences.txt")
    REAL_SUBJECTS = read_lines(args[2] .. "/subjects.txt")
    SENTENCE_CHARS = {}
    for i, sentence in ipairs(SENTENCES) do SENTENCE_CHARS[i] = chars(sentence) end
  end
end

local function pick(list)
  return list[math.random(#list)]
end

local function synthetic()
  local p = math.random(#PROBLEMS)
  local parts, n_chars = {}, 0
  for _, slot in ipairs(SLOTS) do
    if math.random() < slot[1] then
      local i = math.random(#slot[4])
      local phrase, n = slot[4][i], slot[5][i]
      if phrase == "%%PROBLEM%%" then
        phrase, n = PROBLEMS[p], PROBLEM_CHARS[p]
      elseif slot[3] > 0 then
        local number = tostring(math.random(slot[2], slot[3]))
        local replaced, found = string.gsub(phrase, "%%%%d", number)
        phrase = replaced
        if found > 0 then n = n + #number end
      end
      table.insert(parts, phrase)
      n_chars = n_chars + n
    end
  end
  while n_chars < MIN_CHARS do
    table.insert(parts, PAD)
    n_chars = n_chars + PAD_CHARS
  end
  return SUBJECTS[p], table.concat(parts)
end

local function from_corpus()
  local parts, n_chars = {}, 0
  while n_chars < MIN_CHARS do
    local i = math.random(#SENTENCES)
    table.insert(parts, SENTENCES[i])
    n_chars = n_chars + SENTENCE_CHARS[i]
  end
  return pick(REAL_SUBJECTS), table.concat(parts)
end

local function body(serial)
  local subject, content
  if SENTENCES then subject, content = from_corpus() else subject, content = synthetic() end
  local phone = ONE_REPORTER and "13800138000" or string.format("138%%08d", serial %% 100000000)
  return '{"name": "' .. pick(NAMES) .. '", "phone": "' .. phone .. '", "subject": "' ..
    subject .. '", "content": "' .. content .. '", "address": "城阳区' .. pick(STREETS) ..
    tostring(math.random(1, 399)) .. '号"}'
end

function request()
  counter = counter + 1
  sent = sent + 1
  return wrk.format(nil, nil, nil, body(base + counter))
end

function response(status, headers, body)
  if status >= 200 and status < 300 then
    ok = ok + 1
  end
end

function done(summary, latency, _)
  local total_sent, total_ok = 0, 0
  for _, thread in ipairs(threads) do
    total_sent = total_sent + thread:get("sent")
    total_ok = total_ok + thread:get("ok")
  end
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests": %%d, "duration_us": %%d, "ok_2xx": %%d, "status_errors": %%d, ' ..
    '"socket_errors": %%d, "sent": %%d, "p50_us": %%d, "p90_us": %%d, "p99_us": %%d, ' ..
    '"max_us": %%d}\\n',
    summary.requests, summary.duration, total_ok, e.status,
    e.connect + e.read + e.write + e.timeout, total_sent,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
end
"""


def wrk_script(one_reporter: bool = False) -> str:
    """The wrk Lua script: the same composition as ``compose``, in Lua."""
    slots = ",\n".join(
        f"  {{{chance}, {low}, {high}, {_lua_strings(phrases)}, {_lua_ints(phrases)}}}"
        for chance, low, high, phrases in SLOTS
    )
    return _LUA % {
        "names": _lua_strings(NAMES), "streets": _lua_strings(STREETS),
        "subjects": _lua_strings([s for s, _ in PROBLEMS]),
        "problems": _lua_strings([p for _, p in PROBLEMS]),
        "problem_chars": _lua_ints([p for _, p in PROBLEMS]), "slots": slots,
        "one_reporter": "true" if one_reporter else "false",
        "min_chars": MIN_CHARS, "pad": PAD, "pad_chars": len(PAD),
    }
