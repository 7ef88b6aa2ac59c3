"""Charset decisions: how often each way of reading bytes gives back the text written.

    .venv/bin/python bench/charset.py [--data ../shared/data/citizen_messages] [--json]

Texts: the subjects (short, like mail subjects) and details (long, like bodies) of the
real citizen messages of the 2020 TipDM "智慧政务" set when ``--data`` is there, and
short and long sentences written for this benchmark in traditional Chinese, German,
French, Portuguese, Spanish, Russian, Japanese and Korean. Each text is encoded in the
encodings its writers use, and labelled four ways: the right label, no label, a wrong
Latin label (``iso-8859-1``; a Chinese label ``gb2312`` for Latin text) and ``us-ascii``.

Compared, on the same bytes: this gateway's decision (``normalizers.common.charset.decide``),
the label alone (strict decoding; no label or a failing one counts as wrong), and
charset-normalizer's ``from_bytes(...).best()`` alone. A reading is right when it gives
back the text exactly. Prints accuracy per language and label, and in total.
"""

from __future__ import annotations

import argparse
import csv
import json
from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path

from charset_normalizer import from_bytes

from normalizers.common.charset import codec_name, decide

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "citizen_messages"
WRITTEN: dict[str, tuple[list[str], list[str]]] = {  # language: (short, long), encodings
    "zh-Hant": (["升降機壞咗一個禮拜", "路燈損壞", "陳大文"],
                ["臺灣大道路燈損壞已經三天，晚上行人通行困難，請儘快維修。樓下食肆抽風機噪音很大。"]),
    "de": (["Lärm in der Müllerstraße", "Grüße", "Jörg Käßler", "äöüß"],
           ["Sehr geehrte Damen und Herren, die Straßenbahn fährt nachts über die Brücke und "
            "ist sehr laut. Die Anwohner können nicht schlafen. Mit freundlichen Grüßen"]),
    "fr": (["Réponse très élevée", "Éclairage public"],
           ["Bonjour, l'éclairage de la rue Molière est en panne depuis une semaine. "
            "Les piétons ne voient plus rien le soir. Merci de réparer très vite."]),
    "pt": (["Formação Verão", "Iluminação pública"],
           ["A iluminação da rua está apagada há uma semana e não há solução à vista."]),
    "es": (["Señal rota", "¿Cuándo?"],
           ["La farola de la calle mayor está rota desde hace un mes. ¿Quién la arreglará?"]),
    "ru": (["Не работает освещение", "Иван Петров", "Привет"],
           ["Здравствуйте! На улице Ленина уже неделю не работает уличное освещение. "
            "Прошу принять меры как можно скорее."]),
    "ja": (["まみむめも", "街灯が壊れています"],
           ["このメールはテスト用のメールです。今後ともよろしくお願い申し上げます。"]),
    "ko": (["가로등 고장", "한국말로 하는 것"],
           ["대부분의 마찬가지로, 우리는 하나님을 믿습니다. 제 이름은 Jamis입니다."]),
}
ENCODINGS = {
    "zh-Hans": ("gbk", "gb18030", "utf-8"), "zh-Hant": ("big5", "utf-8"),
    "de": ("latin-1", "cp1252", "utf-8"), "fr": ("latin-1", "cp1252", "utf-8"),
    "pt": ("latin-1", "utf-8"), "es": ("latin-1", "utf-8"),
    "ru": ("koi8-r", "cp1251", "utf-8"), "ja": ("shift_jis", "utf-8"), "ko": ("euc-kr", "utf-8"),
}
LATIN = {"de", "fr", "pt", "es"}
Reader = Callable[[bytes, str | None], str | None]


def citizen_texts(folder: Path, limit: int = 300) -> tuple[list[str], list[str]]:
    path = folder / "附件2_sample495_labeled.csv"
    if not path.is_file():
        return (["转发：整体提升企业服务水平", "噪音", "王喆"],
                ["城阳区正阳路夜间施工噪音扰民，居民无法休息。请有关部门尽快处理，谢谢！"])
    with path.open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))[:limit]
    shorts = [r["留言主题"].strip() for r in rows if r["留言主题"].strip()]
    longs = [" ".join(r["留言详情"].split())[:600] for r in rows if r["留言详情"].strip()]
    return shorts, longs


def cases(data: Path) -> Iterator[tuple[str, str, str, str | None, bytes, str]]:
    """(language, length, label kind, label, bytes, the text they must give back)."""
    texts = dict(WRITTEN, **{"zh-Hans": citizen_texts(data)})
    for language, (shorts, longs) in texts.items():
        for length, group in (("short", shorts), ("long", longs)):
            for text in group:
                for encoding in ENCODINGS[language]:
                    try:
                        raw = text.encode(encoding)
                    except UnicodeEncodeError:
                        continue
                    wrong = "gb2312" if language in LATIN else "iso-8859-1"
                    for kind, label in (("right", encoding), ("none", None),
                                        ("wrong", wrong), ("us-ascii", "us-ascii")):
                        yield language, length, kind, label, raw, text


def gateway(data: bytes, label: str | None) -> str | None:
    return decide(data, label).text


def label_alone(data: bytes, label: str | None) -> str | None:
    codec = codec_name(label)
    if codec is None:
        return None
    try:
        return data.decode(codec)
    except UnicodeDecodeError:
        return None


def detector_alone(data: bytes, label: str | None) -> str | None:
    best = from_bytes(data).best()
    return str(best) if best is not None else None


READERS: dict[str, Reader] = {"gateway": gateway, "label alone": label_alone,
                              "charset-normalizer": detector_alone}


def run(data: Path) -> dict[str, dict[str, list[int]]]:
    """{group: {reader: [right, total]}} for groups "language/length/label" and total."""
    tally: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(lambda: [0, 0]))
    for language, length, kind, label, raw, text in cases(data):
        for name, reader in READERS.items():
            right = reader(raw, label) == text
            for group in (f"{language} {length} label={kind}", f"{language} all", "TOTAL"):
                tally[group][name][0] += right
                tally[group][name][1] += 1
    return tally


def _cell(right: int, total: int) -> str:
    return f"{right:>9}/{total:<5} {right / total:6.1%}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    tally = run(args.data)
    if args.json:
        print(json.dumps({g: {r: v for r, v in t.items()} for g, t in tally.items()},
                         ensure_ascii=False))
        return
    print(f"{'group':34}" + "".join(f"{name:>22}" for name in READERS))
    for group in sorted(tally, key=lambda g: (g == "TOTAL", "all" not in g, g)):
        cells = "".join(_cell(*tally[group][name]) for name in READERS)
        print(f"{group:34}{cells}")


if __name__ == "__main__":
    main()
