"""Dedup benchmark: pair precision and recall on real citizen messages, and the cost of
the dedup step (added intake latency, store size, memory) at 10k, 100k and 1M stored
cases on SQLite.

    .venv/bin/python bench/dedup.py [--sizes 10000,100000,1000000] [--probes 400]
                                    [--data ../shared/data/citizen_messages] [--sweep]
                                    [--json]

**Quality.** The 3.3k real messages of the 2020 TipDM "智慧政务" set (a provincial
message board; user ids anonymised) go through the real intake (``Intake.submit``,
default ``dedup:`` settings, a SQLite store) in their own order, squeezed into 25 days so
that all of them are within the 30-day window; each user is a reporter key. Truth:

- *natural* pairs: the set holds people posting the same message again (edited, with
  another greeting) and neighbours posting the same text. A pair of messages whose
  normalized character-trigram sets have an exact Jaccard similarity ≥ 0.5 is a
  positive (every such pair was read: all are the same matter); 0.3–0.5 is a grey zone
  (some are, some are not) that counts neither way; below is a negative.
- *controlled edits* of messages that have no natural partner: sentence reordering,
  inserted greetings and thanks, typos (one character in 25), width changes (full-width
  digits, letters and punctuation), truncation (65–90 % kept) and all of these combined
  (reordering and truncation each half of the time), sent 1 to 72 hours after the
  original, half by the same user (a repeat), half by a new one (related). Each is a
  positive with its original by construction.

Each case the intake links (a repeat, a related case, or an exact duplicate answered as
a replay) makes a predicted pair with the case it was matched to. Precision: predicted
pairs that are true; recall: cases with an earlier true partner that were linked to one.

**Cost.** For each size N a SQLite store (migrated by the gateway) is built in one
process: its dedup index is filled with direct SQL with N − 2,000 entries of synthetic
text (an order-2 character Markov chain trained on the real messages, so shingle
statistics and chance collisions are realistic), all within the window, then 2,000 real
messages go through the intake (cases and entries). Another process, which did not
build it, then sends ``--probes`` items (half variants of the stored real messages, by
their user or another, half real messages not stored) through ``Intake.submit`` twice
each, alternately first: with dedup and with dedup disabled. Reported: the dedup step
(fingerprint before the transaction + ``decide``/``record`` inside it, timed where they
run), the whole intake (journal, case, outbox, commit with fsync) with and without dedup
and the difference of their medians, candidates compared per intake, the size of the
index tables (SQLite ``dbstat``) and the resident memory of the measuring process.

A benchmark, not a test: it exits 0 once it has run (2 when the data is missing).
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import gc
import json
import multiprocessing
import random
import re
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script

from gateway.dedup import deduplicator as dedup_module
from gateway.dedup.deduplicator import Deduplicator, Fingerprint
from gateway.dedup.similarity import TextProfile, band_keys, compact, jaccard, key_hash, minhash
from gateway.intake.pipeline import Intake, IntakeResult, SourceBinding
from gateway.model.normalize import NormalizerContext
from gateway.model.schema import ComplaintDraft, RawRecord, Reporter
from gateway.store import Store
from gateway.store.dedup_index import pack_bands
from gateway.support.config import DEFAULT_BOILERPLATE, DedupConfig

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "citizen_messages"
FILES = ("附件2_sample495_labeled.csv", "附件4_full_replies.csv")
SHANGHAI = ZoneInfo("Asia/Shanghai")
# The stream ends now: entries are pruned by the wall clock, as in production.
SPAN = timedelta(days=25)
START = datetime.now(UTC) - SPAN - timedelta(days=3, minutes=5)
POSITIVE, GREY = 0.5, 0.3
EDITS = ("reorder", "greeting", "typos", "width", "truncate", "combined")
SEEDS = 2000  # real messages among the stored cases of each size
PROFILE = TextProfile(3, DEFAULT_BOILERPLATE)


# -- the corpus ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Message:
    mid: str
    user: str
    subject: str
    when: datetime
    body: str


def _when(text: str) -> datetime:
    for fmt in ("%Y/%m/%d %H:%M:%S", "%Y-%m-%d %H:%M:%S", "%Y/%m/%d %H:%M"):
        try:
            return datetime.strptime(text.strip(), fmt).replace(tzinfo=SHANGHAI)
        except ValueError:
            continue
    raise ValueError(f"unknown time {text!r}")


def load_messages(data: Path) -> list[Message]:
    """Both files, each message once, oldest first."""
    seen: set[tuple[str, str]] = set()
    messages = []
    for name in FILES:
        with open(data / name, encoding="utf-8") as fh:
            for row in csv.DictReader(fh):
                body = row["留言详情"].strip()
                if (row["留言编号"], body) in seen or not body:
                    continue
                seen.add((row["留言编号"], body))
                messages.append(Message(row["留言编号"], row["留言用户"], row["留言主题"].strip(),
                                        _when(row["留言时间"]), body))
    return sorted(messages, key=lambda m: (m.when, m.mid))


def shingle_sets(texts: Sequence[str]) -> list[set[str]]:
    return [PROFILE.shingles(PROFILE.normalize(t)) for t in texts]


def similar_pairs(sets: Sequence[set[str]], floor: float) -> dict[tuple[int, int], float]:
    """Exact Jaccard of every pair at or above ``floor`` (an inverted index on shingles)."""
    postings: dict[str, list[int]] = defaultdict(list)
    for i, shingles in enumerate(sets):
        for s in shingles:
            postings[s].append(i)
    shared: Counter[tuple[int, int]] = Counter()
    for ids in postings.values():
        if len(ids) > 80:  # too common to tell anything (and bounded work)
            continue
        for a in range(len(ids)):
            for b in range(a + 1, len(ids)):
                shared[(ids[a], ids[b])] += 1
    found = {}
    for (a, b), n in shared.items():
        if n / max(len(sets[a]), len(sets[b])) < floor:  # J ≤ n / max: cannot reach it
            continue
        score = jaccard(sets[a], sets[b])
        if score >= floor:
            found[(a, b)] = score
    return found


# -- controlled edits ---------------------------------------------------------------------


_SENTENCE = re.compile(r"(?<=[。！？!?；;\n])")
_CJK = [chr(c) for c in range(0x4E00, 0x9FA6)]


def reorder(text: str, rng: random.Random) -> str:
    parts = [p for p in _SENTENCE.split(text) if p.strip()]
    if len(parts) < 2:
        parts = text.split("，")
        if len(parts) < 2:
            return text
        return "，".join(parts[len(parts) // 2:] + parts[:len(parts) // 2])
    shuffled = parts[:]
    while shuffled == parts:
        rng.shuffle(shuffled)
    return "".join(shuffled)


def greeting(text: str, rng: random.Random) -> str:
    head = rng.choice(["您好！", "尊敬的领导：\n", "你好，", "各位领导你们好！请问，"])
    tail = rng.choice(["谢谢！", "\n非常感谢。", "此致\n敬礼", "谢谢您！"])
    return head + text + tail


def typos(text: str, rng: random.Random, chars: Sequence[str] = _CJK) -> str:
    letters = list(text)
    spots = [i for i, c in enumerate(letters) if "\u4e00" <= c <= "\u9fff"]
    for i in rng.sample(spots, min(len(spots), max(1, len(spots) // 25))):
        letters[i] = rng.choice(chars)
    return "".join(letters)


def width(text: str, rng: random.Random) -> str:
    def flip(c: str) -> str:
        if "!" <= c <= "~":
            return chr(ord(c) + 0xFEE0)
        return {" ": "\u3000", "，": ",", "。": ".", "：": ":"}.get(c, c)

    return "".join(flip(c) for c in text)


def truncate(text: str, rng: random.Random) -> str:
    return text[:max(1, int(len(text) * rng.uniform(0.65, 0.9)))]


def combined(text: str, rng: random.Random) -> str:
    text = reorder(text, rng) if rng.random() < 0.5 else text
    text = truncate(text, rng) if rng.random() < 0.5 else text
    return width(typos(greeting(text, rng), rng), rng)


EDIT_FUNCTIONS = {"reorder": reorder, "greeting": greeting, "typos": typos, "width": width,
                  "truncate": truncate, "combined": combined}


# -- the labelled stream --------------------------------------------------------------------


@dataclass
class Item:
    index: int
    user: str
    subject: str
    body: str
    at: datetime
    origin: str  # "natural" or an edit name
    group: int  # items of one group are true pairs
    same_user: bool = False  # a variant sent by the original's user
    jaccard: float | None = None  # a variant's exact similarity to its original


@dataclass
class Labelled:
    items: list[Item]
    grey: set[frozenset[int]]  # item pairs that count neither way
    natural_pairs: int


class UnionFind:
    def __init__(self, n: int) -> None:
        self.parent = list(range(n))

    def find(self, i: int) -> int:
        while self.parent[i] != i:
            self.parent[i] = self.parent[self.parent[i]]
            i = self.parent[i]
        return i

    def union(self, a: int, b: int) -> None:
        self.parent[self.find(a)] = self.find(b)


def labelled_set(messages: Sequence[Message], per_edit: int, seed: int = 7) -> Labelled:
    rng = random.Random(seed)
    sets = shingle_sets([m.body for m in messages])
    pairs = similar_pairs(sets, GREY)
    groups = UnionFind(len(messages))
    for (a, b), score in pairs.items():
        if score >= POSITIVE:
            groups.union(a, b)
    step = SPAN / max(1, len(messages))
    items = [Item(i, m.user, m.subject, m.body, START + i * step, "natural", groups.find(i))
             for i, m in enumerate(messages)]
    grey = {frozenset(p) for p, s in pairs.items() if s < POSITIVE}
    partnered = {i for p in pairs for i in p}
    lonely = [i for i in range(len(messages)) if i not in partnered and len(sets[i]) >= 20]
    chars = [c for m in messages for c in m.body if "\u4e00" <= c <= "\u9fff"]
    originals = rng.sample(lonely, per_edit * len(EDITS))
    for n, original in enumerate(originals):
        edit = EDITS[n % len(EDITS)]
        base = items[original]
        fn = EDIT_FUNCTIONS[edit]
        body = typos(base.body, rng, chars) if edit == "typos" else fn(base.body, rng)
        same = n % 2 == 0
        user = base.user if same else f"new-{n}"
        at = base.at + timedelta(hours=rng.uniform(1, 24 * 3))
        score = jaccard(sets[original], PROFILE.shingles(PROFILE.normalize(body)))
        items.append(Item(len(items), user, base.subject, body, at, edit, base.group, same,
                          score))
    items.sort(key=lambda it: it.at)
    natural = sum(1 for s in pairs.values() if s >= POSITIVE)
    return Labelled(items, grey, natural)


# -- quality: the real intake over the labelled stream ------------------------------------


def json_draft(raw: RawRecord, ctx: NormalizerContext) -> ComplaintDraft:
    data = json.loads(raw.payload)
    return ComplaintDraft(
        channel="web", source=ctx.source, source_ref=raw.source_ref,
        received_at=raw.received_at, reported_at=raw.received_at,
        reporter=Reporter(email=data["email"]), subject=data["subject"], body=data["body"],
    )


def item_raw(item: Item) -> RawRecord:
    payload = {"body": item.body, "subject": item.subject,
               "email": f"{item.user.lower()}@users.invalid"}
    return RawRecord(channel="web", source="web", source_ref=f"item-{item.index}",
                     payload=json.dumps(payload, ensure_ascii=False).encode(),
                     content_type="application/json", received_at=item.at)


def make_intake(store: Store, config: DedupConfig) -> Intake:
    binding = SourceBinding(json_draft, NormalizerContext("web", SHANGHAI))
    return Intake(store, region="CY", timezone=SHANGHAI, sinks=["platform"],
                  bindings={"web": binding}, dedup=Deduplicator(config))


async def run_stream(labelled: Labelled, config: DedupConfig, workdir: Path
                     ) -> tuple[list[IntakeResult], dict[str, str | None]]:
    """Submit every item in order; the results and, per case code, the case matched."""
    path = workdir / f"quality-{config.threshold}-{config.repeat_threshold}.db"
    store = Store.from_url(f"sqlite:///{path}")
    await store.start()
    try:
        intake = make_intake(store, config)
        results = [await intake.submit(item_raw(item)) for item in labelled.items]
        rows = await store.read(lambda tx: tx.fetchall(
            "SELECT case_code, matched_code FROM dedup_entries"))
    finally:
        await store.close()
    return results, {str(r[0]): r[1] for r in rows}


@dataclass
class Score:
    tp: int = 0
    fp: int = 0
    grey: int = 0
    found: int = 0
    wanted: int = 0

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 1.0

    @property
    def recall(self) -> float:
        return self.found / self.wanted if self.wanted else 1.0

    def as_json(self) -> dict[str, Any]:
        return {"precision": round(self.precision, 4), "recall": round(self.recall, 4),
                "true_links": self.tp, "false_links": self.fp, "grey_links": self.grey,
                "linked": self.found, "to_link": self.wanted}


def _category(item: Item, earlier: Sequence[Item]) -> str:
    if item.origin != "natural":
        return "repeat" if item.same_user else "related"
    return "repeat" if any(e.user == item.user for e in earlier) else "related"


def evaluate(labelled: Labelled, results: Sequence[IntakeResult],
             matched: dict[str, str | None]) -> dict[str, Score]:
    """Scores overall, by kind (repeat / related) and by origin (natural / each edit)."""
    by_code = {r.case_code: n for n, r in enumerate(results)
               if r.case_code and r.outcome != "replay"}
    members: dict[int, list[Item]] = defaultdict(list)
    scores: dict[str, Score] = defaultdict(Score)
    for item, result in zip(labelled.items, results, strict=True):
        target = result.case_code if result.outcome == "replay" else (
            matched.get(result.case_code or "") if result.outcome in ("repeat", "related")
            else None)
        earlier = members[item.group]
        keys = ("all", _category(item, earlier), item.origin)
        if earlier:
            for key in keys:
                scores[key].wanted += 1
        if target is not None and target in by_code:
            other = labelled.items[by_code[target]]
            if other.group == item.group:
                for key in keys:
                    scores[key].tp += 1
                    scores[key].found += 1 if earlier else 0
            elif frozenset((item.index, other.index)) in labelled.grey:
                scores["all"].grey += 1
            else:
                for key in keys:
                    scores[key].fp += 1
        members[item.group].append(item)
    return dict(scores)


async def quality(messages: Sequence[Message], sweep: bool, per_edit: int) -> dict[str, Any]:
    labelled = labelled_set(messages, per_edit)
    settings = [DedupConfig()]
    if sweep:
        settings += [DedupConfig(threshold=t, repeat_threshold=r)
                     for t, r in ((0.4, 0.3), (0.6, 0.5), (0.7, 0.6))]
    runs = []
    with tempfile.TemporaryDirectory(prefix="minsheng-dedup-") as tmp:
        for config in settings:
            started = time.perf_counter()
            results, matched = await run_stream(labelled, config, Path(tmp))
            elapsed = time.perf_counter() - started
            scores = evaluate(labelled, results, matched)
            runs.append({
                "threshold": config.threshold, "repeat_threshold": config.repeat_threshold,
                "outcomes": dict(Counter(r.outcome for r in results)),
                "scores": {k: v.as_json() for k, v in sorted(scores.items())},
                "intake_ms_per_item": round(elapsed / len(results) * 1000, 2),
            })
    edits: dict[str, list[float]] = defaultdict(list)
    for item in labelled.items:
        if item.jaccard is not None:
            edits[item.origin].append(item.jaccard)
    spread = {k: {"min": round(min(v), 3), "median": round(statistics.median(v), 3)}
              for k, v in sorted(edits.items())}
    return {"items": len(labelled.items), "messages": len(messages),
            "natural_positive_pairs": labelled.natural_pairs,
            "grey_pairs": len(labelled.grey), "edit_jaccard": spread, "runs": runs}


# -- cost: synthetic stored cases -----------------------------------------------------------


class Markov:
    """An order-2 character model of the corpus, sampled many texts at a time (numpy)."""

    def __init__(self, texts: Iterable[str]) -> None:
        texts = list(texts)
        corpus = "\n".join(texts)
        corpus += corpus[:2]  # cyclic: every context has a successor
        counts: dict[str, Counter[str]] = defaultdict(Counter)
        for i in range(len(corpus) - 2):
            counts[corpus[i:i + 2]][corpus[i + 2]] += 1
        contexts = sorted(counts)
        index = {c: i for i, c in enumerate(contexts)}
        chars, cums, nexts, starts, totals = [], [], [], [], []
        running = 0
        for ctx in contexts:
            starts.append(running)
            for ch, n in sorted(counts[ctx].items()):
                running += n
                chars.append(ord(ch))
                cums.append(running)
                nexts.append(index[ctx[1] + ch])
            totals.append(running - starts[-1])
        self.chars = np.array(chars, dtype=np.uint32)
        self.cums = np.array(cums, dtype=np.float64)
        self.nexts = np.array(nexts, dtype=np.int64)
        self.starts = np.array(starts, dtype=np.float64)
        self.totals = np.array(totals, dtype=np.float64)
        self.openings = np.array([index[t[:2]] for t in texts if len(t) >= 2 and t[:2] in index])

    def sample(self, lengths: np.ndarray[Any, Any], rng: np.random.Generator) -> list[str]:
        """Texts of the given lengths; the longest first, so each step only draws for the
        texts not yet complete."""
        order = np.argsort(-lengths, kind="stable")
        ordered = lengths[order]
        n, longest = len(lengths), int(ordered[0])
        state = self.openings[rng.integers(0, len(self.openings), n)]
        out = np.zeros((n, longest), dtype="<u4")
        for step in range(longest):
            active = int(np.searchsorted(-ordered, -step, side="left"))
            live = state[:active]
            target = self.starts[live] + rng.random(active) * self.totals[live]
            k = np.searchsorted(self.cums, target, side="right")
            out[:active, step] = self.chars[k]
            state[:active] = self.nexts[k]
        texts = [""] * n
        for row, i in enumerate(order):
            texts[i] = out[row, :ordered[row]].tobytes().decode("utf-32-le")
        return texts


def sketch(text: str) -> tuple[bytes, list[int], int]:
    """What ``Deduplicator.fingerprint`` computes of a text: signature, bands, length."""
    normalized = PROFILE.normalize(text)
    shingles = PROFILE.shingles(normalized)
    if not shingles:
        return b"", [], 0
    values = minhash(shingles)
    return compact(values), band_keys(values), len(normalized)


def sketch_many(texts: list[str]) -> list[tuple[bytes, list[int], int]]:
    return [sketch(t) for t in texts]


DEDUP_INDEXES = [
    ("dedup_entries_at", "dedup_entries (at)"),
    ("dedup_entries_cluster", "dedup_entries (cluster_id, at) WHERE cluster_id IS NOT NULL"),
    ("dedup_reporters_key", "dedup_reporters (reporter_key, case_id)"),
    ("dedup_reporters_case", "dedup_reporters (case_id)"),
]


def _entry_rows(case_id: int, code: str, at: float, sig: bytes, bands: list[int]
                ) -> tuple[Any, ...]:
    return (case_id, code, at, random.getrandbits(63), sig, "new", None, None, None, None,
            None, pack_bands(bands))


def insert_index(conn: sqlite3.Connection, rows: list[tuple[tuple[Any, ...], list[int], int]]
                 ) -> None:
    conn.executemany("INSERT INTO dedup_entries VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                     [r[0] for r in rows])
    conn.executemany("INSERT OR IGNORE INTO dedup_bands (band_key, case_id) VALUES (?, ?)",
                     sorted((b, r[0][0]) for r in rows for b in set(r[1])))
    conn.executemany("INSERT INTO dedup_reporters (reporter_key, case_id) VALUES (?, ?)",
                     [(r[2], r[0][0]) for r in rows])


def fill_synthetic(conn: sqlite3.Connection, n: int, markov: Markov,
                   lengths: np.ndarray[Any, Any], now: float) -> None:
    rng = np.random.default_rng(11)
    phones = max(1, int(n * 0.7))
    chunk = 20_000
    with multiprocessing.get_context("fork").Pool(2) as pool:
        for first in range(0, n, chunk):
            count = min(chunk, n - first)
            texts = markov.sample(rng.choice(lengths, count), rng)
            parts = [texts[i::8] for i in range(8)]
            sketched = pool.map(sketch_many, parts)
            ordered: list[tuple[bytes, list[int], int]] = [None] * count  # type: ignore[list-item]
            for i, part in enumerate(sketched):
                ordered[i::8] = part
            ats = now - rng.random(count) * 29 * 86400
            owners = rng.integers(0, phones, count)
            rows = []
            for j, (sig, bands, _) in enumerate(ordered):
                case_id = 1_000_000_000 + first + j
                entry = _entry_rows(case_id, f"SYN-{case_id}", float(ats[j]), sig, bands)
                rows.append((entry, bands, key_hash(f"tel:+86138{int(owners[j]):08d}")))
            insert_index(conn, rows)
            conn.commit()


async def seed_real(intake: Intake, seeds: Sequence[Message], now: datetime) -> None:
    """File the real messages through the real intake (cases and index entries)."""
    for n, message in enumerate(seeds):
        item = Item(n, message.user, message.subject, message.body,
                    now - timedelta(days=20) + timedelta(seconds=n), "natural", n)
        await intake.submit(item_raw(item))


def split_corpus(messages: Sequence[Message], n: int) -> tuple[list[Message], list[Message]]:
    """The real messages stored with the index (seeds), and the others (fresh probes)."""
    shuffled = list(messages)
    random.Random(5).shuffle(shuffled)
    seeds = shuffled[:min(SEEDS, n // 5)]
    return seeds, shuffled[len(seeds):]


async def build(n: int, messages: Sequence[Message], path: Path) -> float:
    """A store whose index holds ``n`` cases: synthetic rows by direct SQL, then the real
    seeds through the intake. Returns the seconds it took."""
    started = time.perf_counter()
    seeds, _ = split_corpus(messages, n)
    store = Store.from_url(f"sqlite:///{path}")
    await store.start()
    await store.close()
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA synchronous=OFF")
    for name, _ in DEDUP_INDEXES:
        conn.execute(f"DROP INDEX {name}")
    lengths = np.array([len(m.body) for m in messages])
    fill_synthetic(conn, n - len(seeds), Markov(m.body for m in messages), lengths, time.time())
    for name, spec in DEDUP_INDEXES:
        conn.execute(f"CREATE INDEX {name} ON {spec}")
    conn.commit()
    conn.close()
    store = Store.from_url(f"sqlite:///{path}")
    await store.start()
    await seed_real(make_intake(store, DedupConfig()), seeds, datetime.now(UTC))
    await store.close()
    with sqlite3.connect(path) as done:
        done.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return time.perf_counter() - started


def probes(seeds: Sequence[Message], fresh: Sequence[Message], count: int, seed: int = 3
           ) -> list[Item]:
    """Half variants of stored real messages (half by their user: repeats; half by
    someone else: related), half real messages not stored (mostly new)."""
    rng = random.Random(seed)
    chars = [c for m in seeds[:200] for c in m.body if "\u4e00" <= c <= "\u9fff"]
    out = []
    for n in range(count // 2):
        base = seeds[rng.randrange(len(seeds))]
        edit = EDITS[n % len(EDITS)]
        body = typos(base.body, rng, chars) if edit == "typos" else EDIT_FUNCTIONS[edit](
            base.body, rng)
        user = base.user if n % 2 == 0 else f"probe-{n}"
        out.append(Item(n, user, base.subject, body, datetime.now(UTC), edit, -1, n % 2 == 0))
    for n, message in enumerate(fresh[:count - len(out)]):
        out.append(Item(count + n, message.user, message.subject, message.body,
                        datetime.now(UTC), "fresh", -2))
    rng.shuffle(out)
    return out


def memory_mb() -> dict[str, float]:
    """Resident memory now and at its peak (VmRSS, VmHWM) of this process."""
    found = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            found[key] = round(int(value.split()[0]) / 1024, 1)
    return found


def index_bytes(path: Path) -> dict[str, int]:
    conn = sqlite3.connect(path)
    try:
        rows = conn.execute("SELECT name, SUM(pgsize) FROM dbstat GROUP BY name").fetchall()
    except sqlite3.OperationalError:
        rows = []
    finally:
        conn.close()
    wanted = {"dedup_entries", "dedup_bands", "dedup_reporters", "dedup_clusters",
              *(name for name, _ in DEDUP_INDEXES)}
    return {str(name): int(size) for name, size in rows if name in wanted}


@dataclass
class Timings:
    fingerprint: list[float] = field(default_factory=list)
    in_tx: list[float] = field(default_factory=list)
    submit_on: list[float] = field(default_factory=list)
    submit_off: list[float] = field(default_factory=list)
    candidates: list[int] = field(default_factory=list)
    outcomes: Counter[str] = field(default_factory=Counter)


class TimedDeduplicator(Deduplicator):
    """The real thing, timed: fingerprint (event loop), decide + record (writer thread)."""

    def __init__(self, timings: Timings) -> None:
        super().__init__(DedupConfig())
        self.timings = timings
        self._pending = 0.0

    def fingerprint(self, draft: ComplaintDraft) -> Fingerprint:
        started = time.perf_counter()
        try:
            return super().fingerprint(draft)
        finally:
            self.timings.fingerprint.append(time.perf_counter() - started)

    def decide(self, tx: Any, fp: Fingerprint) -> Any:
        started = time.perf_counter()
        decision = super().decide(tx, fp)
        self._pending = time.perf_counter() - started
        if decision.duplicate_of is not None:  # answered as a replay: nothing recorded
            self.timings.in_tx.append(self._pending)
        return decision

    def record(self, *args: Any, **kwargs: Any) -> None:
        started = time.perf_counter()
        try:
            super().record(*args, **kwargs)
        finally:
            self.timings.in_tx.append(self._pending + time.perf_counter() - started)


def counting_bands(timings: Timings) -> Any:
    original = dedup_module.idx.by_bands

    def counting(*args: Any) -> Any:
        found = original(*args)
        timings.candidates.append(len(found))
        return found

    return original, counting


async def measure(store: Store, items: Sequence[Item], timings: Timings) -> None:
    """Each probe twice, alternately first: through an intake with dedup and through one
    without (another source ref each time), timing the whole ``submit``."""
    binding = SourceBinding(json_draft, NormalizerContext("web", SHANGHAI))
    with_dedup = Intake(store, region="CY", timezone=SHANGHAI, sinks=["platform"],
                        bindings={"web": binding}, dedup=TimedDeduplicator(timings))
    without = Intake(store, region="CY", timezone=SHANGHAI, sinks=["platform"],
                     bindings={"web": binding}, dedup=Deduplicator(DedupConfig(enabled=False)))
    original, counting = counting_bands(timings)
    dedup_module.idx.by_bands = counting
    try:
        for n, item in enumerate(items):
            runs = [(with_dedup, timings.submit_on, "on"), (without, timings.submit_off, "off")]
            for intake, into, tag in (runs if n % 2 else runs[::-1]):
                record = replace_ref(item_raw(item), f"probe-{tag}-{n}")
                started = time.perf_counter()
                result = await intake.submit(record)
                into.append(time.perf_counter() - started)
                if tag == "on":
                    timings.outcomes[result.outcome] += 1
    finally:
        dedup_module.idx.by_bands = original


def replace_ref(record: RawRecord, ref: str) -> RawRecord:
    return RawRecord(record.channel, record.source, ref, record.payload, record.content_type,
                     record.received_at, record.metadata, record.idempotency_key)


def _ms(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000, 3)


async def probe_size(n: int, messages: Sequence[Message], path: Path, count: int
                     ) -> dict[str, Any]:
    """Measure on a built store, in a process that did not build it."""
    seeds, fresh = split_corpus(messages, n)
    store = Store.from_url(f"sqlite:///{path}")
    await store.start()
    gc.collect()
    before = memory_mb()
    timings = Timings()
    await measure(store, probes(seeds, fresh, count), timings)
    after = memory_mb()
    entries = int((await store.read(lambda tx: tx.fetchone(
        "SELECT COUNT(*) FROM dedup_entries")))[0])
    await store.close()
    with sqlite3.connect(path) as done:
        done.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    sizes = index_bytes(path)
    steps = [a + b for a, b in zip(timings.fingerprint, timings.in_tx, strict=True)]
    return {
        "stored_cases": n, "index_entries": entries,
        "dedup_step_ms": {"p50": _ms(steps, 0.5), "p95": _ms(steps, 0.95),
                          "p99": _ms(steps, 0.99)},
        "fingerprint_ms": {"p50": _ms(timings.fingerprint, 0.5),
                           "p95": _ms(timings.fingerprint, 0.95)},
        "in_tx_ms": {"p50": _ms(timings.in_tx, 0.5), "p95": _ms(timings.in_tx, 0.95),
                     "p99": _ms(timings.in_tx, 0.99)},
        "submit_ms": {"with_dedup_p50": _ms(timings.submit_on, 0.5),
                      "without_p50": _ms(timings.submit_off, 0.5),
                      "added_p50": round(_ms(timings.submit_on, 0.5)
                                         - _ms(timings.submit_off, 0.5), 3)},
        "candidates_per_intake": {
            "mean": round(statistics.fmean(timings.candidates), 2) if timings.candidates else 0,
            "max": max(timings.candidates, default=0)},
        "outcomes": dict(timings.outcomes),
        "index_bytes": sum(sizes.values()),
        "index_bytes_per_case": round(sum(sizes.values()) / max(1, entries)),
        "index_tables": sizes, "file_bytes": path.stat().st_size,
        "memory_mb": {"before_probes": before.get("VmRSS"), "after_probes": after.get("VmRSS"),
                      "peak": after.get("VmHWM")},
    }


def _child(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, __file__, *args], cwd=ROOT, capture_output=True,
                          text=True)


def run_child(n: int, args: argparse.Namespace) -> dict[str, Any]:
    """One size: built in one process, measured in another (so its memory is only what
    the intake itself holds)."""
    with tempfile.TemporaryDirectory(prefix="minsheng-dedup-") as tmp:
        db, out = Path(tmp) / "gateway.db", Path(tmp) / "result.json"
        common = ["--data", str(args.data), "--db", str(db), "--out", str(out)]
        built = _child("--build", str(n), *common)
        if built.returncode != 0:
            return {"stored_cases": n, "error": built.stderr[-2000:]}
        build_s = json.loads(out.read_text())["build_s"]
        probed = _child("--probe", str(n), "--probes", str(args.probes), *common)
        if probed.returncode != 0:
            return {"stored_cases": n, "error": probed.stderr[-2000:]}
        result: dict[str, Any] = json.loads(out.read_text())
        return {**result, "build_s": round(build_s, 1)}


# -- report ---------------------------------------------------------------------------------


def print_quality(q: dict[str, Any]) -> None:
    print(f"Quality — {q['messages']} real messages + {q['items'] - q['messages']} controlled "
          f"edits ({q['natural_positive_pairs']} natural positive pairs, "
          f"{q['grey_pairs']} grey pairs ignored)")
    print("  exact Jaccard of each edit to its original: " + ", ".join(
        f"{k} {v['median']} (min {v['min']})" for k, v in q["edit_jaccard"].items()))
    for run in q["runs"]:
        print(f"\n  threshold {run['threshold']} (related), {run['repeat_threshold']} (repeat); "
              f"outcomes {run['outcomes']}; {run['intake_ms_per_item']} ms per intake; "
              f"{run['scores']['all']['grey_links']} links in the grey zone (not counted)")
        print(f"  {'':10} {'precision':>9} {'recall':>7} {'links':>6} {'false':>6} "
              f"{'to link':>8}")
        for key, s in run["scores"].items():
            print(f"  {key:10} {s['precision']:9.3f} {s['recall']:7.3f} {s['true_links']:6} "
                  f"{s['false_links']:6} {s['to_link']:8}")


def print_cost(rows: Sequence[dict[str, Any]]) -> None:
    print("\nCost on SQLite, per intake. dedup step: fingerprint (before the transaction) + "
          "decide/record (inside it); submit: the whole intake with and without dedup "
          "(commit with fsync included)")
    print(f"  {'stored':>9} {'step p50':>9} {'p95':>6} {'in-tx p50':>9} {'p99':>6} "
          f"{'submit on':>9} {'off':>6} {'added':>6} {'cands':>6} {'index MB':>9} "
          f"{'B/case':>7} {'RSS MB':>7} {'build s':>8}")
    for r in rows:
        if "error" in r:
            print(f"  {r['stored_cases']:>9} failed: {r['error'][-300:]}")
            continue
        step, tx, sub = r["dedup_step_ms"], r["in_tx_ms"], r["submit_ms"]
        print(f"  {r['stored_cases']:>9} {step['p50']:>9} {step['p95']:>6} {tx['p50']:>9} "
              f"{tx['p99']:>6} {sub['with_dedup_p50']:>9} {sub['without_p50']:>6} "
              f"{sub['added_p50']:>6} {r['candidates_per_intake']['mean']:>6} "
              f"{r['index_bytes'] / 2**20:>9.1f} {r['index_bytes_per_case']:>7} "
              f"{r['memory_mb']['after_probes']:>7} {r['build_s']:>8}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--probes", type=int, default=400)
    parser.add_argument("--per-edit", type=int, default=60)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--sweep", action="store_true", help="also other thresholds")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--build", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--probe", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--db", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if not all((args.data / f).exists() for f in FILES):
        print(f"citizen messages not found under {args.data}", file=sys.stderr)
        return 2
    messages = load_messages(args.data)
    if args.build:
        seconds = asyncio.run(build(args.build, messages, args.db))
        args.out.write_text(json.dumps({"build_s": seconds}))
        return 0
    if args.probe:
        result = asyncio.run(probe_size(args.probe, messages, args.db, args.probes))
        args.out.write_text(json.dumps(result))
        return 0
    report = {"quality": asyncio.run(quality(messages, args.sweep, args.per_edit)),
              "cost": [run_child(int(n), args) for n in args.sizes.split(",") if n]}
    if args.json:
        print(json.dumps(report, ensure_ascii=False, indent=2))
    else:
        print_quality(report["quality"])
        print_cost(report["cost"])
    return 0


def _quiet() -> None:
    import logging

    from gateway.support.logging import configure_logging

    configure_logging("json", "warning")
    logging.getLogger().setLevel(logging.WARNING)


if __name__ == "__main__":
    _quiet()
    sys.exit(main())

