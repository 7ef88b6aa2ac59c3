"""The classifier: train, save, load (skops: no code runs from a model file), predict,
the numpy fast path against scikit-learn's own predict_proba, the train/eval commands on
a small labelled file written here, and — when ../shared/data is there — the measured
target of issue 16 (macro-F1 ≥ 0.80 in stratified 5-fold CV on 494 real messages)."""

from __future__ import annotations

import csv
import json
import pickle
import zipfile
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from gateway.cli import main
from gateway.model.errors import ConfigError
from gateway.routing.classifier import FORMAT_VERSION, load_model, model_input, train
from gateway.routing.evaluation import cross_validate, read_labelled
from gateway.routing.taxonomy import load_taxonomy

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data" / "citizen_messages"
TOPICS = {
    "交通运输": ["公交车晚点严重", "共享单车乱停放", "出租车拒载", "道路拥堵红绿灯配时不合理"],
    "教育文体": ["学校乱收补课费", "幼儿园入园难", "小学学位不足", "体育馆不对外开放"],
    "环境保护": ["工厂排放黑烟", "河道污水直排", "夜间施工噪声扰民", "垃圾焚烧异味"],
}
PLACES = ["城阳区", "正阳路", "春阳路", "河套街道"]


def rows() -> list[tuple[str, str, str]]:
    """Labelled messages written for this test: subject, body, label."""
    out = []
    for label, topics in TOPICS.items():
        for topic in topics:
            for place in PLACES:
                out.append((f"{place}{topic}", f"{place}附近{topic}，希望有关部门尽快处理。",
                            label))
    return out


def write_csv(path: Path) -> Path:
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["主题", "详情", "分类"])
        writer.writerows(rows())
    return path


def test_train_save_load_predict(tmp_path: Path) -> None:
    data = read_labelled(write_csv(tmp_path / "h.csv"), ["主题", "详情"], "分类")
    model = train(data.texts, data.labels, {"教育文体": "学校 教育 入学"}, source="h.csv")
    path = tmp_path / "m.skops"
    model.save(path)
    loaded = load_model(path)
    assert loaded.metadata["format_version"] == FORMAT_VERSION
    assert loaded.metadata["classes"] == sorted(TOPICS)
    assert loaded.metadata["rows"] == 48 and len(loaded.metadata["data_sha256"]) == 64
    assert {"scikit-learn", "skops", "numpy", "scipy"} <= set(loaded.metadata["libraries"])
    label, confidence = loaded.predict("河道污水", "有工厂往河道里直排污水")
    assert label == "环境保护" and 0.34 < confidence <= 1
    assert loaded.name.startswith("char-svm-v1:")


def test_fast_path_agrees_with_scikit_learn(tmp_path: Path) -> None:
    data = read_labelled(write_csv(tmp_path / "h.csv"), ["主题", "详情"], "分类")
    model = train(data.texts, data.labels)
    probes = [*data.texts[:6], model_input("完全无关", "天气很好"), model_input("", "")]
    for text in probes:
        expected = model.pipeline.predict_proba([text])[0]
        assert np.allclose(model.fast.probabilities(text), expected, atol=1e-9)
    binary = train(data.texts[:32], data.labels[:32])  # two classes: one decision value
    for text in probes:
        assert np.allclose(binary.fast.probabilities(text),
                           binary.pipeline.predict_proba([text])[0], atol=1e-9)


def test_untrusted_or_foreign_model_files_are_refused(tmp_path: Path) -> None:
    class Evil:
        def __reduce__(self) -> tuple[object, tuple[str]]:
            return (print, ("pwned",))

    pickled = tmp_path / "evil.skops"
    pickled.write_bytes(pickle.dumps(Evil()))
    with pytest.raises(ConfigError, match="not a usable model file"):
        load_model(pickled)
    # A skops archive whose schema names a type outside the trusted list.
    data = read_labelled(write_csv(tmp_path / "h.csv"), ["主题", "详情"], "分类")
    good = tmp_path / "good.skops"
    train(data.texts, data.labels).save(good)
    tampered = tmp_path / "tampered.skops"
    with zipfile.ZipFile(good) as src, zipfile.ZipFile(tampered, "w") as dst:
        for item in src.infolist():
            content = src.read(item.filename)
            if item.filename == "schema.json":
                content = content.replace(b'"whole_text"', b'"system"').replace(
                    b'"gateway.routing.classifier"', b'"os"')
            dst.writestr(item, content)
    with pytest.raises(ConfigError, match="not a usable model file"):
        load_model(tampered)
    with pytest.raises(ConfigError, match=r"absent\.skops: No such file"):
        load_model(tmp_path / "absent.skops")


def test_train_and_eval_commands(tmp_path: Path) -> None:
    history = write_csv(tmp_path / "h.csv")
    model = tmp_path / "model.skops"
    runner = CliRunner()
    common = ["--from", str(history), "--text-cols", "主题,详情", "--label-col", "分类"]
    trained = runner.invoke(main, ["classify", "train", *common, "--out", str(model),
                                   "--config", str(tmp_path / "absent.yaml")])
    assert trained.exit_code == 0, trained.output
    assert "48 rows" in trained.output
    measured = runner.invoke(main, ["classify", "eval", *common, "--model", str(model),
                                    "--json"])
    assert measured.exit_code == 0, measured.output
    result = json.loads(measured.output)
    assert result["accuracy"] == 1.0 and result["macro_f1"] == 1.0
    assert result["confusion"]["classes"] == sorted(TOPICS)
    table = runner.invoke(main, ["classify", "eval", *common, "--folds", "4"])
    assert table.exit_code == 0, table.output
    assert "macro-F1" in table.output and "confusion 混淆矩阵" in table.output
    both = runner.invoke(main, ["classify", "eval", *common])
    assert both.exit_code == 2 and "either --model MODEL or --folds N" in both.output
    wrong = runner.invoke(main, ["classify", "train", "--from", str(history), "--text-cols",
                                 "标题", "--label-col", "分类"])
    assert wrong.exit_code == 2 and "no column 标题" in wrong.output


@pytest.mark.skipif(not SHARED.exists(), reason=f"shared sample data not found at {SHARED}")
def test_target_macro_f1_on_the_real_messages() -> None:
    """Issue 16's protocol (bench/classify.py prints it beside the baseline)."""
    import sys

    sys.path.insert(0, str(ROOT))
    from bench.classify import load

    data = load(SHARED)
    assert len(data.texts) == 494
    priors = load_taxonomy(SHARED / "附件1_label_taxonomy.csv").priors(set(data.labels))
    result = cross_validate(data, lambda x, y: train(x, y, priors).pipeline.predict, 5, 0)
    assert result.macro_f1 >= 0.80
