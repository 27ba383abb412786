"""Summaries, gap closed, result files and plots for benchmark runs.

A *record* is the dict that one training run returns (see ``hypersst.tasks.hgnn.run_hgnn``).
The keys used here are ``dataset``, ``task``, ``manifold``, ``curvature``, ``method``,
``rank`` (None for full-rank runs), ``seed``, ``best_epoch``, ``epochs_run``, ``val`` and
``test`` (dicts of metric name to value in [0, 1]) and ``history`` (lists ``epoch``,
``train_loss`` and ``val_metric``).

Epochs count from 0 everywhere: ``best_epoch`` in the records, ``results.csv`` and
``results.json``, and the x axis of :func:`plot_validation_curves` (epoch 0 is the evaluation
after the first optimizer step).

Gap closed compares SST with the best low-rank baseline at the same rank:

    gap closed = (SST − best of LoRA/ReLoRA*) / (full − best of LoRA/ReLoRA*)

computed on the mean test metric over seeds. It is undefined (NaN, shown as "n/a" with a
note) when a needed method did not run or when full and the best baseline are equal.

Both differences of the ratio come with their standard error over seeds,
``sqrt(sd_a**2 / n_a + sd_b**2 / n_b)``. When the denominator is below twice its standard error, the
seeds do not resolve the gap, and small changes of the means swing the ratio widely. The table marks
such values.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hypersst._io import atomic_open, atomic_write_text

__all__ = [
    "GapClosed",
    "TEST_METRICS",
    "compute_gaps",
    "format_table",
    "gap_closed",
    "load_run",
    "plot_curvature",
    "plot_validation_curves",
    "save_run",
    "summarize",
    "write_results",
]

TEST_METRICS = {"nc": ("f1", "accuracy"), "lp": ("roc_auc", "ap")}
"""Test metrics reported per task, the first one being the headline metric."""

GAP_METRICS = {"nc": ("f1",), "lp": ("roc_auc", "ap")}
"""Test metrics on which the gap closed is computed, per task."""

METHOD_ORDER = ("full", "lora", "relora", "sst")
BASELINE_METHODS = ("lora", "relora")
_GROUP_KEYS = ("dataset", "task", "manifold", "curvature", "method", "rank")
_SETTING_KEYS = ("dataset", "task", "manifold", "curvature")


@dataclass(frozen=True)
class GapClosed:
    """Gap closed by SST for one setting and metric.

    Attributes:
        value: the fraction of the full-vs-baseline gap that SST closes; NaN when undefined.
        note: why the value is undefined or unusual; empty when there is nothing to say.
        best_baseline: the method (``"lora"`` or ``"relora"``) with the best mean, or None.
    """

    value: float
    note: str = ""
    best_baseline: str | None = None


def gap_closed(full: float | None, baselines: dict[str, float], sst: float | None) -> GapClosed:
    """Compute (SST − best baseline) / (full − best baseline) from mean metrics.

    Higher metrics are assumed better. The denominator counts as zero when it is below
    1e-12 times the metric's magnitude, so rounding noise in equal means never produces
    a huge ratio.

    Args:
        full: mean metric of full-rank training, or None if it did not run.
        baselines: mean metric per low-rank baseline that ran, e.g. ``{"lora": 0.7}``.
        sst: mean metric of SST, or None if it did not run.

    Returns:
        A :class:`GapClosed`; its value is NaN with a note when a method is missing or when no
        baseline is below full rank (a zero or negative denominator).
    """
    present = {name: value for name, value in baselines.items() if value is not None}
    missing = []
    if full is None:
        missing.append("full")
    if not present:
        missing.append("lora or relora")
    if sst is None:
        missing.append("sst")
    if missing:
        return GapClosed(math.nan, f"needs {', '.join(missing)}")
    values = [full, sst, *present.values()]
    if not all(math.isfinite(v) for v in values):
        return GapClosed(math.nan, "a mean metric is not finite")

    best_name = max(present, key=present.get)
    best = present[best_name]
    denominator = full - best
    if abs(denominator) <= 1e-12 * max(1.0, abs(full)):
        return GapClosed(math.nan, f"full and {best_name} have the same mean, so there is no gap to close", best_name)
    if denominator < 0:
        return GapClosed(math.nan, f"{best_name} beats full, so there is no gap to close", best_name)
    value = (sst - best) / denominator
    return GapClosed(value, "SST beats full" if value > 1 else "", best_name)


def _group_key(record: dict, keys: Sequence[str]) -> tuple:
    return tuple(record.get(key) for key in keys)


def summarize(records: Iterable[dict]) -> list[dict]:
    """Aggregate run records into mean ± std over seeds.

    The standard deviation is the sample one (ddof=1); it is None for a single seed.

    Args:
        records: run records.

    Returns:
        One dict per (dataset, task, manifold, curvature, method, rank) with the group
        keys, ``seeds`` (list of int), ``best_epochs`` (the best epoch of each seed, in the
        order of ``seeds``; None where a record lacks it) and ``test`` / ``val``: metric name ->
        ``{"mean": float, "std": float | None}``.
    """
    groups: dict[tuple, list[dict]] = {}
    for record in records:
        groups.setdefault(_group_key(record, _GROUP_KEYS), []).append(record)

    rows = []
    for key, members in groups.items():
        row = dict(zip(_GROUP_KEYS, key))
        members = sorted(members, key=lambda member: member["seed"])
        row["seeds"] = [member["seed"] for member in members]
        row["best_epochs"] = [member.get("best_epoch") for member in members]
        for split in ("val", "test"):
            row[split] = {}
            for name in members[0][split]:
                values = np.array([member[split][name] for member in members], dtype=np.float64)
                std = float(values.std(ddof=1)) if values.size > 1 else None
                row[split][name] = {"mean": float(values.mean()), "std": std}
        rows.append(row)
    rows.sort(key=_summary_sort_key)
    return rows


def _summary_sort_key(row: dict) -> tuple:
    method = row["method"]
    method_index = METHOD_ORDER.index(method) if method in METHOD_ORDER else len(METHOD_ORDER)
    return (
        str(row["dataset"]),
        str(row["task"]),
        str(row["manifold"]),
        row["curvature"] if row["curvature"] is not None else math.nan,
        row["rank"] if row["rank"] is not None else -1,
        method_index,
    )


def _test_mean(row: dict | None, metric: str) -> float | None:
    return None if row is None else row["test"][metric]["mean"]


def _difference(row: dict | None, other: dict | None, metric: str) -> tuple[float | None, float | None]:
    """Return ``mean(row) - mean(other)`` and its standard error, or None where they are unknown.

    The standard error is None when either side ran a single seed, since its spread is then unknown.
    """
    if row is None or other is None:
        return None, None
    first, second = row["test"][metric], other["test"][metric]
    difference = first["mean"] - second["mean"]
    if first["std"] is None or second["std"] is None:
        return difference, None
    variance = first["std"] ** 2 / len(row["seeds"]) + second["std"] ** 2 / len(other["seeds"])
    return difference, math.sqrt(variance)


def compute_gaps(summary: Sequence[dict]) -> list[dict]:
    """Compute the gap closed for every setting and rank that has an SST row.

    Full-rank rows have no rank and serve every rank of their setting.

    Args:
        summary: output of :func:`summarize`.

    Returns:
        One dict per (setting, rank) with the setting keys, ``rank``, ``metric``,
        ``value`` (NaN when undefined), ``note`` and ``best_baseline``. When a best baseline
        exists, it also has the ratio's two differences of mean test metrics and their standard
        errors over seeds: ``full_minus_baseline`` and ``full_minus_baseline_se``,
        ``sst_minus_baseline`` and ``sst_minus_baseline_se`` (None where unknown), and ``resolved``:
        whether ``full_minus_baseline`` exceeds twice its standard error (None when that is unknown).
    """
    by_setting: dict[tuple, list[dict]] = {}
    for row in summary:
        by_setting.setdefault(_group_key(row, _SETTING_KEYS), []).append(row)

    gaps = []
    for setting, rows in by_setting.items():
        full_rows = [row for row in rows if row["method"] == "full"]
        full = full_rows[0] if full_rows else None
        ranks = sorted({row["rank"] for row in rows if row["method"] == "sst"})
        for rank in ranks:
            at_rank = {row["method"]: row for row in rows if row["rank"] == rank}
            task = setting[1]
            for metric in GAP_METRICS[task]:
                result = gap_closed(
                    _test_mean(full, metric),
                    {name: _test_mean(at_rank.get(name), metric) for name in BASELINE_METHODS},
                    _test_mean(at_rank.get("sst"), metric),
                )
                gap = dict(zip(_SETTING_KEYS, setting))
                gap.update(rank=rank, metric=metric, value=result.value, note=result.note, best_baseline=result.best_baseline)
                if result.best_baseline is not None:
                    baseline = at_rank[result.best_baseline]
                    denominator, denominator_se = _difference(full, baseline, metric)
                    numerator, numerator_se = _difference(at_rank.get("sst"), baseline, metric)
                    gap.update(
                        full_minus_baseline=denominator,
                        full_minus_baseline_se=denominator_se,
                        sst_minus_baseline=numerator,
                        sst_minus_baseline_se=numerator_se,
                        resolved=None if denominator_se is None else denominator > 2 * denominator_se,
                    )
                gaps.append(gap)
    return gaps


def _format_mean_std(entry: dict) -> str:
    text = f"{100 * entry['mean']:.2f}"
    if entry["std"] is None:
        return text + " ± n/a"
    return text + f" ± {100 * entry['std']:.2f}"


def _format_points(difference: float, standard_error: float | None) -> str:
    text = f"{100 * difference:+.2f}"
    return text if standard_error is None else text + f" ± {100 * standard_error:.2f}"


def _format_differences(gap: dict) -> str:
    """Describe the ratio's two differences in points, with the standard errors where known."""
    if gap.get("full_minus_baseline") is None or gap.get("sst_minus_baseline") is None:
        return ""
    baseline = gap["best_baseline"]
    text = (
        f"; sst - {baseline} {_format_points(gap['sst_minus_baseline'], gap['sst_minus_baseline_se'])}, "
        f"full - {baseline} {_format_points(gap['full_minus_baseline'], gap['full_minus_baseline_se'])} points"
    )
    if gap["full_minus_baseline_se"] is not None:
        text += " (± standard error)"
    if gap["resolved"] is False:
        text += f"; full - {baseline} is under twice its standard error, so these seeds do not resolve the gap"
    return text


def format_table(summary: Sequence[dict], gaps: Sequence[dict] = ()) -> str:
    """Render the summary and the gap closed as a plain-text table (metrics in %).

    A note follows the table for every method whose best epoch is 0 for some seed: such a
    run never improved on its first evaluation, so its metrics describe an untrained model.

    Args:
        summary: output of :func:`summarize`.
        gaps: output of :func:`compute_gaps`.

    Returns:
        The table as one string.
    """
    header = ["dataset", "task", "manifold", "curvature", "method", "rank", "seeds", "test metrics (mean ± std, %)"]
    lines = []
    for row in summary:
        metrics = ", ".join(f"{name} {_format_mean_std(entry)}" for name, entry in row["test"].items())
        rank = "-" if row["rank"] is None else str(row["rank"])
        curvature = "-" if row["curvature"] is None else f"{row['curvature']:g}"
        lines.append([row["dataset"], row["task"], row["manifold"], curvature, row["method"], rank, str(len(row["seeds"])), metrics])
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *lines)] if lines else [len(h) for h in header]
    text = [" | ".join(str(cell).ljust(width) for cell, width in zip(row, widths)).rstrip() for row in [header, *lines]]
    text.insert(1, "-+-".join("-" * width for width in widths))

    if gaps:
        text.append("")
        text.append("gap closed = (SST - best of LoRA/ReLoRA*) / (full - best of LoRA/ReLoRA*), on mean test metrics")
        for gap in gaps:
            value = "n/a" if math.isnan(gap["value"]) else f"{100 * gap['value']:.1f} %"
            curvature = "" if gap["curvature"] is None else f" curvature {gap['curvature']:g}"
            where = f"{gap['dataset']} {gap['task']} {gap['manifold']}{curvature} rank {gap['rank']} {gap['metric']}"
            note = f" ({gap['note']})" if gap["note"] else ""
            text.append(f"  {where}: {value}{note}{_format_differences(gap)}")

    stalled = [row for row in summary if 0 in row.get("best_epochs", ())]
    if stalled:
        text.append("")
    for row in stalled:
        seeds = [seed for seed, epoch in zip(row["seeds"], row["best_epochs"]) if epoch == 0]
        curvature = "" if row["curvature"] is None else f" curvature {row['curvature']:g}"
        rank = "" if row["rank"] is None else f" rank {row['rank']}"
        where = f"{row['dataset']} {row['task']} {row['manifold']}{curvature} {row['method']}{rank}"
        seed_text = "seed " if len(seeds) == 1 else "seeds "
        seed_text += ", ".join(map(str, seeds))
        text.append(f"note: {where} {seed_text}: best epoch 0: the run never improved; consider more --epochs")
    return "\n".join(text)


def _json_safe(value):
    """Replace NaN and Inf by None, since JSON has no literal for them."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(key): _json_safe(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(item) for item in value]
    if isinstance(value, (np.floating, np.integer)):
        return _json_safe(value.item())
    return value


def write_results(out_dir: str | Path, records: Sequence[dict], summary: Sequence[dict], gaps: Sequence[dict], config: dict) -> dict[str, Path]:
    """Write ``results.json`` (everything) and ``results.csv`` (one row per run).

    ``best_epoch`` counts from 0, as the x axis of :func:`plot_validation_curves` does. The CSV has one
    ``sst_<key>`` column per key of the records' ``sst`` settings (the scheduler config of ReLoRA* and
    SST runs, plus SST's learning-rate scales), empty in the rows of other methods and where a setting
    is None.

    Args:
        out_dir: output folder, created if missing.
        records: run records, including their histories.
        summary: output of :func:`summarize`.
        gaps: output of :func:`compute_gaps`.
        config: the command configuration to store next to the results.

    Returns:
        ``{"json": path, "csv": path}``.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path = out_dir / "results.json"
    payload = {"config": config, "runs": list(records), "summary": list(summary), "gap_closed": list(gaps)}
    atomic_write_text(json_path, json.dumps(_json_safe(payload), indent=2) + "\n")

    csv_path = out_dir / "results.csv"
    metric_names = sorted({f"{split}_{name}" for record in records for split in ("val", "test") for name in record[split]})
    sst_keys = sorted({key for record in records for key in record.get("sst") or {}})
    columns = [
        *_GROUP_KEYS, "seed", "protocol", "features", "best_epoch", "epochs_run", "trainable_parameters", "seconds",
        *metric_names, *(f"sst_{key}" for key in sst_keys),
    ]
    with atomic_open(csv_path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        for record in records:
            row = {key: record.get(key) for key in columns}
            for split in ("val", "test"):
                for name, value in record[split].items():
                    row[f"{split}_{name}"] = value
            for key, value in (record.get("sst") or {}).items():
                row[f"sst_{key}"] = value
            row["rank"] = "" if record.get("rank") is None else record["rank"]
            writer.writerow(row)
    return {"json": json_path, "csv": csv_path}


RUN_FILE_FORMAT = 1
"""Version of the layout of the per-run files that :func:`save_run` writes."""


def save_run(path: str | Path, run_config: dict, record: dict) -> dict:
    """Write one finished run to ``path`` atomically and return the record as it reads back.

    The returned record is the JSON round trip of ``record`` (tuples become lists, NaN becomes None), so
    a command that uses it gives the same output as one that later reads the file with :func:`load_run`.

    Args:
        path: destination ``.json`` file.
        run_config: every setting that determines the run, compared on resume.
        record: the run record.
    """
    payload = {"format": RUN_FILE_FORMAT, "run_config": run_config, "record": record}
    text = json.dumps(_json_safe(payload)) + "\n"
    atomic_write_text(path, text)
    return json.loads(text)["record"]


def load_run(path: str | Path) -> tuple[dict, dict]:
    """Read a file written by :func:`save_run` and return ``(run_config, record)``.

    Raises:
        ValueError: if the file is not valid JSON, lacks the layout of :func:`save_run`, or its record lacks a
            field that the summaries, result files and plots read.
    """
    path = Path(path)
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"{path} is not a run file of hypersst ({error}); delete it to train that run again") from None
    version = payload.get("format") if isinstance(payload, dict) else None
    if isinstance(version, int) and version > RUN_FILE_FORMAT:
        raise ValueError(
            f"{path} was written by a newer hypersst (run-file format {version}, this one reads format "
            f"{RUN_FILE_FORMAT}); upgrade hypersst, or delete the file to train that run again"
        )
    if not isinstance(payload, dict) or payload.get("format") != RUN_FILE_FORMAT or not all(
        isinstance(payload.get(key), dict) for key in ("run_config", "record")
    ):
        raise ValueError(
            f"{path} lacks the layout of a hypersst run file (format {RUN_FILE_FORMAT} with run_config and record); "
            "delete it to train that run again"
        )
    record = payload["record"]
    if not _record_is_complete(record):
        raise ValueError(
            f"{path} does not contain a complete run record (dataset, task, method, seed, numeric val and test "
            "metrics, the history of validation values, best_epoch); delete it to train that run again"
        )
    return payload["run_config"], record


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _record_is_complete(record: dict) -> bool:
    """Return whether ``record`` has every field that the summaries, result files and plots read, with valid types."""
    if record.get("task") not in TEST_METRICS or not all(key in record for key in _GROUP_KEYS + ("seed",)):
        return False
    for split in ("val", "test"):
        metrics = record.get(split)
        if not isinstance(metrics, dict) or not metrics or not all(_is_number(value) for value in metrics.values()):
            return False
    if not all(name in record["test"] for name in TEST_METRICS[record["task"]]):
        return False
    history = record.get("history")
    if not isinstance(history, dict):
        return False
    epochs, values = history.get("epoch"), history.get("val_metric")
    if not isinstance(epochs, list) or not isinstance(values, list) or len(epochs) != len(values):
        return False
    return isinstance(record.get("best_epoch"), int) and not isinstance(record["best_epoch"], bool)


def _label(record_or_row: dict, with_curvature: bool) -> str:
    label = record_or_row["method"]
    if record_or_row.get("rank") is not None:
        label += f" r={record_or_row['rank']}"
    if with_curvature and record_or_row.get("curvature") is not None:
        name = "kappa" if record_or_row.get("manifold") == "poincare" else "k"
        label += f" {record_or_row['manifold']} {name}={record_or_row['curvature']:g}"
    return label


def plot_validation_curves(records: Sequence[dict], path: str | Path, *, with_curvature: bool = False) -> Path:
    """Plot the validation selection metric against the epoch, one line per method.

    Each line is the mean over seeds of the runs that reached that epoch (early
    stopping ends seeds at different epochs). One panel per dataset and task. Epochs
    count from 0, as ``best_epoch`` does in the records and in ``results.csv``.

    Args:
        records: run records with ``history``.
        path: PNG path to write.
        with_curvature: add manifold and curvature to the line labels.

    Returns:
        The written path.
    """
    return _save(_validation_figure(records, with_curvature), path)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(figure, path: str | Path) -> Path:
    path = Path(path)
    try:
        with atomic_open(path, "wb") as stream:
            figure.savefig(stream, format=path.suffix.lstrip(".") or "png", dpi=100)
    finally:
        _pyplot().close(figure)
    return path


def _validation_figure(records: Sequence[dict], with_curvature: bool):
    """Draw the figure of :func:`plot_validation_curves` and return it unsaved."""
    plt = _pyplot()
    panels: dict[tuple, dict[str, list[dict]]] = {}
    for record in records:
        panel = panels.setdefault((record["dataset"], record["task"]), {})
        panel.setdefault(_label(record, with_curvature), []).append(record)

    figure, axes = plt.subplots(1, max(1, len(panels)), figsize=(6 * max(1, len(panels)), 4), squeeze=False)
    for axis, ((dataset, task), lines) in zip(axes[0], sorted(panels.items())):
        for label, members in lines.items():
            longest = max(members, key=lambda member: len(member["history"]["val_metric"]))
            length = len(longest["history"]["val_metric"])
            epochs = longest["history"].get("epoch") or list(range(length))
            curve = np.full((len(members), length), np.nan)
            for index, member in enumerate(members):
                values = member["history"]["val_metric"]
                curve[index, : len(values)] = values
            counts = np.sum(~np.isnan(curve), axis=0)
            mean = np.nansum(curve, axis=0) / np.maximum(counts, 1)
            axis.plot(epochs, mean, label=label)
        axis.set_title(f"{dataset} {task.upper()}")
        axis.set_xlabel("epoch (from 0)")
        metric = "val F1" if task == "nc" else "val mean(ROC-AUC, AP)"
        axis.set_ylabel(f"{metric}, mean over the seeds still running")
        axis.legend(fontsize="small")
    figure.tight_layout()
    return figure


def plot_curvature(summary: Sequence[dict], path: str | Path) -> Path:
    """Plot the mean ± std headline test metric against curvature, one line per method.

    One panel per dataset, task and manifold, so that Lorentz ``k`` and Poincaré ``kappa``
    never share an axis. The drawn ± std band is clipped to the metric's range [0, 1]; the
    summary itself is not changed.

    Args:
        summary: output of :func:`summarize` over runs with a curvature.
        path: PNG path to write.

    Returns:
        The written path.
    """
    return _save(_curvature_figure(summary), path)


_CURVATURE_AXIS = {
    "lorentz": "Lorentz k (sectional curvature -1/k)",
    "poincare": "Poincaré kappa (0 is Euclidean)",
}


def _curvature_figure(summary: Sequence[dict]):
    """Draw the figure of :func:`plot_curvature` and return it unsaved."""
    plt = _pyplot()
    panels: dict[tuple, dict[str, list[dict]]] = {}
    for row in summary:
        panel = panels.setdefault((row["dataset"], row["task"], row["manifold"]), {})
        label = row["method"] + ("" if row["rank"] is None else f" r={row['rank']}")
        panel.setdefault(label, []).append(row)

    figure, axes = plt.subplots(1, max(1, len(panels)), figsize=(6 * max(1, len(panels)), 4), squeeze=False)
    for axis, ((dataset, task, manifold), lines) in zip(axes[0], sorted(panels.items())):
        metric = TEST_METRICS[task][0]
        for label, rows in lines.items():
            rows = sorted(rows, key=lambda row: row["curvature"])
            x = [row["curvature"] for row in rows]
            mean = np.array([row["test"][metric]["mean"] for row in rows])
            std = np.array([row["test"][metric]["std"] or 0.0 for row in rows])
            # Metrics lie in [0, 1], so the drawn band is clipped to that range. The summary keeps its numbers.
            below = np.maximum(mean - np.clip(mean - std, 0.0, 1.0), 0.0)
            above = np.maximum(np.clip(mean + std, 0.0, 1.0) - mean, 0.0)
            axis.errorbar(x, mean, yerr=np.stack([below, above]), marker="o", capsize=3, label=label)
        axis.set_title(f"{dataset} {task.upper()} ({manifold})")
        axis.set_xlabel(_CURVATURE_AXIS.get(manifold, f"{manifold} curvature"))
        axis.set_ylabel(f"test {metric}")
        axis.legend(fontsize="small")
    figure.tight_layout()
    return figure
