import csv
import json
import math

import pytest

import numpy as np

from hypersst.tasks.reporting import (
    _curvature_figure,
    _validation_figure,
    compute_gaps,
    format_table,
    gap_closed,
    load_run,
    plot_curvature,
    plot_validation_curves,
    save_run,
    summarize,
    write_results,
)


def make_record(
    method, rank, seed, f1, *, dataset="synthetic", task="nc", curvature=1.0, history=None, manifold="lorentz", best_epoch=3
):
    test = {"f1": f1, "accuracy": f1} if task == "nc" else {"roc_auc": f1, "ap": f1}
    return {
        "dataset": dataset,
        "task": task,
        "manifold": manifold,
        "curvature": curvature,
        "method": method,
        "rank": rank,
        "seed": seed,
        "protocol": "clean",
        "features": "auto",
        "best_epoch": best_epoch,
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
    assert math.isnan(result.value)
    assert result.note == "lora beats full, so there is no gap to close"
    assert result.best_baseline == "lora"


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


def _three_seeds(method, rank, values):
    return [make_record(method, rank, seed, value) for seed, value in enumerate(values)]


def test_gaps_report_difference_standard_errors():
    records = (
        _three_seeds("full", None, [0.80, 0.82, 0.84])
        + _three_seeds("lora", 2, [0.70, 0.71, 0.72])
        + _three_seeds("sst", 2, [0.74, 0.77, 0.80])
    )
    (gap,) = compute_gaps(summarize(records))
    assert gap["full_minus_baseline"] == pytest.approx(0.11)
    assert gap["full_minus_baseline_se"] == pytest.approx(math.sqrt((0.02**2 + 0.01**2) / 3))
    assert gap["sst_minus_baseline"] == pytest.approx(0.06)
    assert gap["sst_minus_baseline_se"] == pytest.approx(math.sqrt((0.03**2 + 0.01**2) / 3))
    assert gap["resolved"] is True


def test_gaps_flag_unresolved_denominator():
    records = (
        _three_seeds("full", None, [0.79, 0.81, 0.83])
        + _three_seeds("relora", 2, [0.77, 0.80, 0.83])
        + _three_seeds("sst", 2, [0.76, 0.79, 0.79])
    )
    summary = summarize(records)
    (gap,) = compute_gaps(summary)
    # full - relora = 0.01 against a standard error of sqrt((0.02**2 + 0.03**2) / 3) = 0.0208.
    assert gap["full_minus_baseline"] == pytest.approx(0.01)
    assert gap["resolved"] is False
    assert gap["value"] == pytest.approx(-2.0)
    line = next(line for line in format_table(summary, [gap]).splitlines() if "rank 2 f1" in line)
    assert "sst - relora -2.00 ± 2.00, full - relora +1.00 ± 2.08 points" in line
    assert "these seeds do not resolve the gap" in line


def test_single_seed_gap_lacks_standard_error():
    records = [make_record("full", None, 0, 0.9), make_record("lora", 2, 0, 0.6), make_record("sst", 2, 0, 0.75)]
    summary = summarize(records)
    (gap,) = compute_gaps(summary)
    assert gap["full_minus_baseline_se"] is None
    assert gap["resolved"] is None
    text = format_table(summary, [gap])
    assert "sst - lora +15.00, full - lora +30.00 points" in text
    assert "standard error" not in text


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


def test_csv_lists_sst_settings(tmp_path):
    sst = make_record("sst", 2, 0, 0.8)
    sst["sst"] = {"steps_per_iteration": 20, "iterations_per_round": None, "value_lr_scale": 0.1}
    relora = make_record("relora", 2, 0, 0.85)
    relora["sst"] = {"steps_per_iteration": 10, "iterations_per_round": None}
    records = [make_record("full", None, 0, 0.9), relora, sst]
    summary = summarize(records)
    paths = write_results(tmp_path / "out", records, summary, compute_gaps(summary), {"command": "hgnn"})
    with paths["csv"].open() as handle:
        rows = list(csv.DictReader(handle))
    full_row, relora_row, sst_row = rows
    assert sst_row["sst_steps_per_iteration"] == "20"
    assert sst_row["sst_value_lr_scale"] == "0.1"
    assert sst_row["sst_iterations_per_round"] == ""
    assert relora_row["sst_steps_per_iteration"] == "10"
    assert relora_row["sst_value_lr_scale"] == ""
    assert full_row["sst_steps_per_iteration"] == ""


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


def test_summarize_best_epochs_seed_order():
    records = [make_record("sst", 2, 1, 0.5, best_epoch=7), make_record("sst", 2, 0, 0.6, best_epoch=0)]
    (row,) = summarize(records)
    assert row["seeds"] == [0, 1]
    assert row["best_epochs"] == [0, 7]


def test_format_table_flags_best_epoch_zero():
    records = [
        make_record("full", None, 0, 0.9, best_epoch=12),
        make_record("sst", 2, 0, 0.5, best_epoch=0),
        make_record("sst", 2, 1, 0.6, best_epoch=4),
        make_record("sst", 2, 2, 0.6, best_epoch=0),
    ]
    text = format_table(summarize(records))
    flagged = [line for line in text.splitlines() if "best epoch 0" in line]
    assert flagged == [
        "note: synthetic nc lorentz curvature 1 sst rank 2 seeds 0, 2: best epoch 0: "
        "the run never improved; consider more --epochs"
    ]


def test_format_table_silent_when_improved():
    text = format_table(summarize([make_record("sst", 2, 0, 0.5, best_epoch=1)]))
    assert "never improved" not in text


def test_validation_curves_count_epochs_from_zero():
    history = {"epoch": [0, 1, 2, 3], "train_loss": [1, 1, 1, 1], "val_metric": [0.1, 0.2, 0.2, 0.3]}
    figure = _validation_figure([make_record("sst", 2, 0, 0.5, history=history, best_epoch=3)], with_curvature=False)
    (line,) = figure.axes[0].get_lines()
    assert list(line.get_xdata()) == history["epoch"]
    assert "from 0" in figure.axes[0].get_xlabel()


def errorbar_extent(axis):
    low, high = math.inf, -math.inf
    for container in axis.containers:
        for collection in container.lines[2]:
            for segment in collection.get_segments():
                low = min(low, float(np.min(segment[:, 1])))
                high = max(high, float(np.max(segment[:, 1])))
    return low, high


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_curvature_band_clipped_to_range(seed):
    rng = np.random.default_rng(seed)
    records = []
    for curvature in (0.5, 1.0, 2.0):
        f1s = [0.02, 0.98] if curvature == 1.0 else rng.uniform(0.0, 1.0, size=2).tolist()
        records += [make_record("sst", 2, index, f1, curvature=curvature) for index, f1 in enumerate(f1s)]
    summary = summarize(records)
    figure = _curvature_figure(summary)
    low, high = errorbar_extent(figure.axes[0])
    assert low >= 0.0
    assert high <= 1.0
    # The seed pair 0.02 / 0.98 has a std of 0.68, so its band reaches both ends of [0, 1].
    assert low == pytest.approx(0.0)
    assert high == pytest.approx(1.0)
    middle = next(row for row in summary if row["curvature"] == 1.0)
    assert middle["test"]["f1"]["std"] == pytest.approx(np.std([0.02, 0.98], ddof=1))  # The numbers stay unclipped.


def test_curvature_plot_separates_manifolds():
    records = [make_record("sst", 2, 0, 0.6, curvature=k) for k in (0.5, 1.0)]
    records += [make_record("sst", 2, 0, 0.5, curvature=kappa, manifold="poincare") for kappa in (-1.0, 0.0)]
    figure = _curvature_figure(summarize(records))
    lorentz, poincare = sorted(figure.axes, key=lambda axis: axis.get_xlabel())
    assert len(figure.axes) == 2
    assert lorentz.get_xlabel().startswith("Lorentz k")
    assert poincare.get_xlabel().startswith("Poincaré kappa")
    lorentz_x = [x for line in lorentz.get_lines() for x in line.get_xdata()]
    poincare_x = [x for line in poincare.get_lines() for x in line.get_xdata()]
    assert min(lorentz_x) > 0
    assert max(poincare_x) <= 0


def test_poincare_labels_name_kappa():
    records = [make_record("sst", 2, 0, 0.5, curvature=-1.0, manifold="poincare")]
    figure = _validation_figure(records, with_curvature=True)
    (line,) = figure.axes[0].get_lines()
    assert line.get_label() == "sst r=2 poincare kappa=-1"


def test_saved_run_reads_back_as_returned(tmp_path):
    record = make_record("sst", 2, 0, 0.75)
    record["sst"] = {"warmup": (2, 3), "value_lr_scale": float("nan")}
    returned = save_run(tmp_path / "run.json", {"epochs": None}, record)
    config, loaded = load_run(tmp_path / "run.json")
    assert config == {"epochs": None}
    assert loaded == returned
    assert loaded["sst"] == {"warmup": [2, 3], "value_lr_scale": None}


def test_load_run_rejects_a_record_without_metrics(tmp_path):
    record = make_record("full", None, 0, 0.75)
    record["test"] = {}
    save_run(tmp_path / "run.json", {}, record)
    with pytest.raises(ValueError, match="run.json does not contain a complete run record"):
        load_run(tmp_path / "run.json")
