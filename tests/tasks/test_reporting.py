import csv
import json
import math

import pytest

from hypersst.tasks.reporting import (
    compute_gaps,
    format_table,
    gap_closed,
    plot_curvature,
    plot_validation_curves,
    summarize,
    write_results,
)


def make_record(method, rank, seed, f1, *, dataset="synthetic", task="nc", curvature=1.0, history=None):
    test = {"f1": f1, "accuracy": f1} if task == "nc" else {"roc_auc": f1, "ap": f1}
    return {
        "dataset": dataset,
        "task": task,
        "manifold": "lorentz",
        "curvature": curvature,
        "method": method,
        "rank": rank,
        "seed": seed,
        "protocol": "clean",
        "features": "auto",
        "best_epoch": 3,
        "epochs_run": 5,
        "trainable_parameters": 100,
        "seconds": 0.1,
        "val": dict(test),
        "test": test,
        "history": history or {"epoch": [0, 1, 2], "train_loss": [1.0, 0.9, 0.8], "val_metric": [0.2, 0.4, 0.5]},
    }


def test_gap_closed_arithmetic():
    result = gap_closed(0.80, {"lora": 0.60, "relora": 0.70}, 0.75)
    assert result.best_baseline == "relora"
    assert result.value == pytest.approx(0.5)
    assert result.note == ""


def test_gap_closed_uses_best_baseline_only():
    result = gap_closed(0.9, {"lora": 0.5, "relora": None}, 0.7)
    assert result.best_baseline == "lora"
    assert result.value == pytest.approx(0.5)


def test_gap_closed_sst_beats_full():
    result = gap_closed(0.8, {"lora": 0.6}, 0.9)
    assert result.value == pytest.approx(1.5)
    assert "beats full" in result.note


def test_gap_closed_degenerate_equal_means():
    result = gap_closed(0.7, {"lora": 0.7, "relora": 0.65}, 0.72)
    assert math.isnan(result.value)
    assert "same mean" in result.note


def test_gap_closed_rounding_noise_counts_as_equal():
    result = gap_closed(0.1 + 0.2, {"lora": 0.3}, 0.3)
    assert math.isnan(result.value)


def test_gap_closed_baseline_beats_full():
    result = gap_closed(0.6, {"lora": 0.8}, 0.7)
    assert result.value == pytest.approx(0.5)
    assert "reversed" in result.note


@pytest.mark.parametrize(
    ("full", "baselines", "sst", "missing"),
    [
        (None, {"lora": 0.5}, 0.6, "full"),
        (0.7, {}, 0.6, "lora or relora"),
        (0.7, {"lora": None, "relora": None}, 0.6, "lora or relora"),
        (0.7, {"lora": 0.5}, None, "sst"),
    ],
)
def test_gap_closed_missing_methods(full, baselines, sst, missing):
    result = gap_closed(full, baselines, sst)
    assert math.isnan(result.value)
    assert missing in result.note


def test_gap_closed_non_finite_mean():
    assert math.isnan(gap_closed(math.nan, {"lora": 0.5}, 0.6).value)


def test_summarize_mean_and_sample_std():
    records = [make_record("sst", 4, seed, f1) for seed, f1 in enumerate([0.6, 0.8])]
    records.append(make_record("full", None, 0, 0.9))
    summary = summarize(records)
    assert [row["method"] for row in summary] == ["full", "sst"]
    sst = summary[1]
    assert sst["seeds"] == [0, 1]
    assert sst["test"]["f1"]["mean"] == pytest.approx(0.7)
    assert sst["test"]["f1"]["std"] == pytest.approx(math.sqrt(0.02))
    assert summary[0]["test"]["f1"]["std"] is None


def test_compute_gaps_per_rank():
    records = [
        make_record("full", None, 0, 0.9),
        make_record("lora", 2, 0, 0.5),
        make_record("relora", 2, 0, 0.6),
        make_record("sst", 2, 0, 0.75),
        make_record("lora", 4, 0, 0.7),
        make_record("sst", 4, 0, 0.7),
    ]
    gaps = compute_gaps(summarize(records))
    assert [(gap["rank"], gap["metric"]) for gap in gaps] == [(2, "f1"), (4, "f1")]
    assert gaps[0]["value"] == pytest.approx(0.5)
    assert gaps[0]["best_baseline"] == "relora"
    assert gaps[1]["value"] == pytest.approx(0.0)


def test_compute_gaps_lp_metrics_and_missing_full():
    records = [make_record("lora", 2, 0, 0.8, task="lp"), make_record("sst", 2, 0, 0.85, task="lp")]
    gaps = compute_gaps(summarize(records))
    assert [gap["metric"] for gap in gaps] == ["roc_auc", "ap"]
    assert all(math.isnan(gap["value"]) and "full" in gap["note"] for gap in gaps)


def test_format_table_lists_methods_and_gaps():
    records = [make_record("full", None, 0, 0.9), make_record("lora", 2, 0, 0.9), make_record("sst", 2, 0, 0.8)]
    summary = summarize(records)
    text = format_table(summary, compute_gaps(summary))
    assert "90.00 ± n/a" in text
    assert "rank 2 f1: n/a (full and lora have the same mean" in text


def test_write_results_json_and_csv(tmp_path):
    records = [make_record("full", None, 0, 0.9), make_record("lora", 2, 0, 0.9), make_record("sst", 2, 0, 0.8)]
    summary = summarize(records)
    gaps = compute_gaps(summary)
    paths = write_results(tmp_path / "out", records, summary, gaps, {"command": "hgnn"})
    payload = json.loads(paths["json"].read_text())
    assert payload["config"] == {"command": "hgnn"}
    assert len(payload["runs"]) == 3
    assert payload["gap_closed"][0]["value"] is None  # NaN is stored as null
    with paths["csv"].open() as handle:
        rows = list(csv.DictReader(handle))
    assert [row["method"] for row in rows] == ["full", "lora", "sst"]
    assert rows[0]["rank"] == ""
    assert float(rows[2]["test_f1"]) == pytest.approx(0.8)


def test_plots_write_png(tmp_path):
    records = [
        make_record("full", None, 0, 0.9),
        make_record("sst", 2, 0, 0.8, history={"epoch": [0, 1], "train_loss": [1, 1], "val_metric": [0.1, 0.3]}),
        make_record("sst", 2, 1, 0.7),
        make_record("sst", 2, 0, 0.6, task="lp"),
    ]
    curves = plot_validation_curves(records, tmp_path / "val.png")
    assert curves.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    sweep = [make_record("sst", 2, 0, 0.5 + 0.1 * k, curvature=k) for k in (0.5, 1.0, 2.0)]
    figure = plot_curvature(summarize(sweep), tmp_path / "curvature.png")
    assert figure.stat().st_size > 1000
