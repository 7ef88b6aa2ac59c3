"""Classifier benchmark: macro-F1 of the plain baseline (character n-gram TF-IDF + linear
SVM) beside the gateway's classifier, in the same stratified 5-fold cross-validation,
and the cost of one prediction at intake.

    .venv/bin/python bench/classify.py [--data ../shared/data/citizen_messages]
                                       [--seeds 0,1,2] [--json]

Data: 附件2_sample495_labeled.csv (495 real messages of a provincial message board, 7
first-level classes); subject (留言主题) and body (留言详情). Message 37042 appears twice,
once as 城乡建设 and once as 劳动和社会保障; its text (online lookup of employees'
medical-insurance payments) is a social-insurance matter, so the 劳动和社会保障 row is
kept and the other dropped: 494 messages. The taxonomy names of 附件1 are the gateway
classifier's prior knowledge (one extra document per class, added to each training fold
only). Scores are computed on the pooled out-of-fold predictions of each split seed.

Latency: the model trained on all messages predicts each message alone (as the intake
does, one complaint at a time), timed with ``perf_counter``; also the whole hint step
(classification + routing rules + due date) of ``RoutingHints.apply``.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.pipeline import make_pipeline
from sklearn.svm import LinearSVC

from gateway.model.schema import ComplaintDraft
from gateway.routing.classifier import SEPARATOR, train
from gateway.routing.evaluation import LabelledData, cross_validate, read_labelled
from gateway.routing.hints import RoutingHints
from gateway.routing.taxonomy import load_taxonomy
from gateway.support.routing_config import ClassifierConfig, DeadlinesConfig

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data" / "citizen_messages"
DROPPED = ("37042", "城乡建设")  # the duplicate's row that is not kept (see above)


def load(folder: Path) -> LabelledData:
    """The labelled messages without the dropped duplicate row."""
    path = folder / "附件2_sample495_labeled.csv"
    data = read_labelled(path, ["留言主题", "留言详情"], "一级分类")
    ids = _ids(path)
    keep = [i for i, (mid, label) in enumerate(zip(ids, data.labels, strict=True))
            if (mid, label) != DROPPED]
    return LabelledData([data.texts[i] for i in keep], [data.labels[i] for i in keep])


def _ids(path: Path) -> list[str]:
    with path.open(encoding="utf-8-sig", newline="") as handle:
        return [row["留言编号"] for row in csv.DictReader(handle)
                if row["一级分类"].strip() and (row["留言主题"] or row["留言详情"])]


def baseline(texts: list[str], labels: list[str]) -> Callable[[list[str]], list[str]]:
    """Plain character 1–3-gram TF-IDF on subject + body, LinearSVC with its defaults."""
    model = make_pipeline(TfidfVectorizer(analyzer="char", ngram_range=(1, 3)), LinearSVC())
    model.fit([t.replace(SEPARATOR, " ") for t in texts], labels)
    return lambda batch: [str(p) for p in model.predict([t.replace(SEPARATOR, " ")
                                                          for t in batch])]


def latency(data: LabelledData, priors: dict[str, str], folder: Path) -> dict[str, float]:
    model = train(data.texts, data.labels, priors)
    hints = RoutingHints(timezone=ZoneInfo("Asia/Shanghai"),
                         classifier=ClassifierConfig(), deadlines=DeadlinesConfig(),
                         taxonomy=load_taxonomy(folder / "附件1_label_taxonomy.csv"),
                         model=model)
    now = datetime.now(UTC)
    predict, whole, cpu = [], [], []
    for text in data.texts:
        subject, _, body = text.partition(SEPARATOR)
        started = time.perf_counter()
        model.predict(subject, body)
        predict.append(time.perf_counter() - started)
        draft = ComplaintDraft(channel="web", source="bench", source_ref="x", received_at=now,
                               reported_at=now, subject=subject, body=body)
        started, started_cpu = time.perf_counter(), time.thread_time()
        hints.apply(draft)
        whole.append(time.perf_counter() - started)
        cpu.append(time.thread_time() - started_cpu)
    return {"predict_median_ms": _ms(predict, 0.5), "predict_p99_ms": _ms(predict, 0.99),
            "hints_median_ms": _ms(whole, 0.5), "hints_p99_ms": _ms(whole, 0.99),
            "hints_cpu_median_ms": _ms(cpu, 0.5), "hints_cpu_p99_ms": _ms(cpu, 0.99)}


def _ms(seconds: list[float], quantile: float) -> float:
    """A quantile in milliseconds (wall clock on a shared machine has outliers: the CPU
    time of the thread says what the work itself costs)."""
    return sorted(seconds)[min(len(seconds) - 1, int(len(seconds) * quantile))] * 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--seeds", default="0", help="split seeds, comma-separated")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if not (args.data / "附件2_sample495_labeled.csv").exists():
        print(f"no data at {args.data}", file=sys.stderr)
        return 2
    data = load(args.data)
    priors = load_taxonomy(args.data / "附件1_label_taxonomy.csv").priors(set(data.labels))
    seeds: dict[str, dict[str, dict[str, float]]] = {}
    for seed in [int(s) for s in args.seeds.split(",")]:
        base = cross_validate(data, baseline, 5, seed)
        ours = cross_validate(data, lambda x, y: train(x, y, priors).pipeline.predict, 5, seed)
        seeds[str(seed)] = {
            "baseline": {"macro_f1": base.macro_f1, "accuracy": base.accuracy},
            "gateway": {"macro_f1": ours.macro_f1, "accuracy": ours.accuracy}}
    lat = latency(data, priors, args.data)
    if args.json:
        print(json.dumps({"messages": len(data.texts), "folds": 5, "seeds": seeds,
                          "latency": lat}, ensure_ascii=False, indent=2))
        return 0
    print(f"{len(data.texts)} messages, stratified 5-fold CV (pooled out-of-fold)")
    print(f"{'seed':<6}{'baseline macro-F1':>20}{'gateway macro-F1':>20}"
          f"{'baseline acc':>14}{'gateway acc':>14}")
    for name, row in seeds.items():
        print(f"{name:<6}{row['baseline']['macro_f1']:>20.3f}{row['gateway']['macro_f1']:>20.3f}"
              f"{row['baseline']['accuracy']:>14.3f}{row['gateway']['accuracy']:>14.3f}")
    print(f"one prediction: median {lat['predict_median_ms']:.3f} ms, "
          f"p99 {lat['predict_p99_ms']:.3f} ms; whole hint step: median "
          f"{lat['hints_median_ms']:.3f} ms, p99 {lat['hints_p99_ms']:.3f} ms; "
          f"its CPU time: median {lat['hints_cpu_median_ms']:.3f} ms, "
          f"p99 {lat['hints_cpu_p99_ms']:.3f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
