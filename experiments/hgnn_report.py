"""Turn the HGNN benchmark outputs into the Markdown tables of docs/benchmarks.md.

Reads every ``results.json`` below each given folder (as written by ``hypersst hgnn --grid``), and every
run file in a ``runs`` folder there, so that a grid still training or interrupted can be reported. It prints
per protocol: the mean ± std test metric of full, LoRA, ReLoRA* and SST, the gap closed per setting and on
average next to the averages reported for SST (node classification 73.7 %, link prediction 82.5 %), and,
for full rank, the comparison with HyboNet's released code and the seconds per epoch.

ReLoRA* and SST runs are grouped by variant. For both methods a variant is the iteration length, the
warm-up and its scope, and the optimizer-state reset. For SST it also covers the learning-rate scale and
rule of the singular vectors, the iterations per round, the vector gradient, the sampling rule and the
learning-rate scale of the singular values. The main table uses the variants given by the ``--relora-*``
and ``--sst-*`` options (see ``--help``; by default the library's defaults). When a folder contains
several variants, a second table lists their mean validation metric, the basis for choosing them.

Usage::

    python experiments/hgnn_report.py results/hgnn/hgcn results/hgnn/clean > results/hgnn/report.md
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
from pathlib import Path

from hypersst.cli import RUNS_FOLDER
from hypersst.tasks.hgnn import (
    GRADIENTS,
    SAMPLINGS,
    SST_GRADIENT,
    SST_ITERATIONS_PER_ROUND,
    SST_SAMPLING,
    SST_STATE_RESET,
    SST_STEPS_PER_ITERATION,
    SST_VALUE_LR_SCALE,
    SST_VECTOR_LR_RULE,
    SST_VECTOR_LR_SCALE,
    SST_WARMUP_SCOPE,
    STATE_RESETS,
    VECTOR_LR_RULES,
    WARMUP_SCOPES,
    WARMUP_STEPS,
)
from hypersst.tasks.reporting import compute_gaps, load_run, summarize

METHODS = ("full", "lora", "relora", "sst")
LABELS = {"full": "full", "lora": "LoRA", "relora": "ReLoRA*", "sst": "SST"}
# Metric that decides the gap closed: F1 for node classification, ROC-AUC for link prediction.
PRIMARY = {"nc": "f1", "lp": "roc_auc"}
PAPER_GAP = {"nc": 73.7, "lp": 82.5}

# HyboNet's released GCN code run unchanged on a 2-core CPU with 1 torch thread (torch 2.13, geoopt 0.5.1),
# seeds 1234, 0 and 1, HGCN splits: test metric in % (mean, sd) and seconds per epoch.
REFERENCE = {
    ("airport", "lp"): {"roc_auc": (96.33, 0.11), "ap": (95.76, 0.08), "seconds_per_epoch": 0.152},
    ("airport", "nc"): {"f1": (93.96, 0.48), "seconds_per_epoch": 0.132},
    ("cora", "lp"): {"roc_auc": (94.15, 0.21), "ap": (94.41, 0.26), "seconds_per_epoch": 0.294},
    ("cora", "nc"): {"f1": (81.33, 1.11), "seconds_per_epoch": 0.295},
    ("disease", "lp"): {"roc_auc": (96.57, 0.05), "ap": (92.52, 0.66), "seconds_per_epoch": 0.076},
}


def _variant(run: dict) -> tuple | None:
    """Return a run's variant: ``(steps per iteration, warm-up steps, vector lr scale, vector lr rule,
    state reset, iterations per round, vector gradient, sampling rule, value lr scale, warm-up scope)``
    for SST, ``(steps, warm-up, None, None, state reset, None, None, None, None, warm-up scope)`` for
    ReLoRA*, None for full rank and LoRA. Iterations per round of None mean ``ceil(k / r)``.

    Runs recorded before the scale existed trained at scale 1, with the weight decay of the dense weights
    also applied to the vectors before each renormalization; runs recorded before the rule existed used
    the uniform rule, and runs recorded before the state reset existed used the "moments" reset. Runs
    recorded before the singular values had a scale of their own trained them at scale 1. Runs recorded
    before the warm-up had a scope warmed up every parameter group.
    """
    sst = run.get("sst")
    if not sst:
        return None
    reset = sst.get("state_reset", "moments")
    steps, warmup = sst["steps_per_iteration"], sst["warmup_steps"]
    scope = sst.get("warmup_scope", "all")
    if run["method"] != "sst":
        return steps, warmup, None, None, reset, None, None, None, None, scope
    scale, rule = sst.get("vector_lr_scale", 1.0), sst.get("vector_lr_rule", "uniform")
    gradient, sampling = sst.get("gradient", "enhanced"), sst.get("sampling", "mixed")
    values = sst.get("value_lr_scale", 1.0)
    return steps, warmup, scale, rule, reset, sst.get("iterations_per_round"), gradient, sampling, values, scope


def _variant_text(variant: tuple) -> str:
    steps, warmup, scale, rule, reset, per_round, gradient, sampling, values, scope = variant
    text = f"{steps} steps"
    # Most variants warm up for a tenth of the iteration, so the label names only other warm-ups.
    if warmup != steps // 10:
        text += f" ({warmup}-step warm-up)"
    if scope != "all":
        text += f", warm-up of {scope} groups only"
    if scale is not None:
        text += f", vector lr × {scale:g}" + ("" if rule == "uniform" else f" ({rule} rule)")
    if reset == "restart":
        text += ", Adam restarted"
    if per_round is not None:
        text += f", re-SVD every {per_round} iterations"
    if gradient not in (None, SST_GRADIENT):
        text += ", true gradient" if gradient == "default" else f", {gradient} gradient"
    if sampling not in (None, SST_SAMPLING):
        text += f", {sampling} sampling"
    # Scale 1 was the only one before the singular values had a scale of their own, so it stays unnamed.
    if values not in (None, 1.0):
        text += f", singular values lr × {values:g}"
    return text


def _load_runs(folder: Path) -> list[dict]:
    """Load every run below ``folder``, from ``results.json`` files and from the run files of ``runs`` folders.

    A run repeated in a newer file (same setting, method, variant, seed, curvature and hyperparameters) wins.
    """
    paths = list(folder.rglob("results.json")) + [path for path in folder.rglob("*.json") if path.parent.name == RUNS_FOLDER]
    latest: dict[tuple, dict] = {}
    for path in sorted(paths, key=lambda item: item.stat().st_mtime):
        if path.name == "results.json":
            runs = json.loads(path.read_text())["runs"]
        else:
            try:
                runs = [load_run(path)[1]]
            except ValueError as error:
                raise SystemExit(str(error)) from None
        for run in runs:
            key = (
                run["dataset"], run["task"], run["method"], run["rank"], _variant(run), run["seed"],
                run["protocol"], run["manifold"], run["curvature"], json.dumps(run.get("hyperparameters"), sort_keys=True),
            )
            latest[key] = run
    return list(latest.values())


def _row_order(item: tuple) -> tuple:
    """Return the sort key of a validation-table row: method, then its variant with None made comparable."""
    (method, (steps, warmup, scale, rule, reset, per_round, gradient, sampling, values, scope)), _ = item
    return method, steps, warmup, scale or 0, rule or "", reset, per_round or 0, gradient or "", sampling or "", values or 0, scope


def _validation_table(runs: list[dict]) -> list[str]:
    """Return the table of the mean validation metric of each ReLoRA* and SST variant, per setting and on average."""
    cells: dict[tuple, dict[tuple, list[float]]] = {}
    for run in runs:
        variant = _variant(run)
        if variant is not None:
            metric = PRIMARY[run["task"]]
            cells.setdefault((run["method"], variant), {}).setdefault((run["dataset"], run["task"]), []).append(run["val"][metric])
    if len(cells) <= len({method for method, _ in cells}):
        return []
    settings = sorted({setting for values in cells.values() for setting in values})
    names = [f"{setting[0]} {setting[1].upper()}" for setting in settings]
    lines = ["| method | variant | " + " | ".join(names) + " | average |", "|---" * (len(names) + 3) + "|"]
    for (method, variant), values in sorted(cells.items(), key=_row_order):
        means = [_stats(values[setting])[0] if setting in values else float("nan") for setting in settings]
        average = statistics.mean(means) if not any(math.isnan(mean) for mean in means) else float("nan")
        row = " | ".join("—" if math.isnan(mean) else f"{mean:.2f}" for mean in means + [average])
        lines.append(f"| {LABELS[method]} | {_variant_text(variant)} | {row} |")
    return ["Mean validation metric (F1 for NC, ROC-AUC for LP, in %) of each variant:", ""] + lines + [""]


def _stats(values: list[float]) -> tuple[float, float]:
    mean = statistics.mean(values)
    std = statistics.stdev(values) if len(values) > 1 else float("nan")
    return 100 * mean, 100 * std


def _check_comparable(folder: Path, runs: list[dict]) -> None:
    """Exit when the runs of one setting differ in more than method, variant and seed.

    Runs with another curvature, rank, epoch limit or protocol would otherwise share a table cell.
    """
    fields = {
        "protocol": lambda run: run["protocol"],
        "manifold": lambda run: run["manifold"],
        "curvature": lambda run: run["curvature"],
        "features": lambda run: run.get("features"),
        "rank": lambda run: run["rank"] if run["method"] != "full" else None,
    }
    names = sorted({key for run in runs for key in run.get("hyperparameters") or {}})
    for key in names:
        fields[f"hyperparameter {key}"] = lambda run, key=key: (run.get("hyperparameters") or {}).get(key)
    for dataset, task in sorted({(run["dataset"], run["task"]) for run in runs}):
        setting = [run for run in runs if (run["dataset"], run["task"]) == (dataset, task)]
        for name, value_of in fields.items():
            values = {value_of(run) for run in setting}
            if name == "rank":
                values.discard(None)
            if len(values) > 1:
                raise SystemExit(
                    f"the {dataset} {task} runs below {folder} differ in {name} ({', '.join(sorted(map(str, values)))}); "
                    "report each from its own folder"
                )


def report(folder: Path, chosen: dict[str, tuple]) -> str:
    """Return the Markdown section of one protocol; ``chosen`` maps "relora" and "sst" to their variant."""
    all_runs = _load_runs(folder)
    if not all_runs:
        raise SystemExit(f"no results.json or saved run found below {folder}")
    patiences = sorted({run["hyperparameters"]["patience"] for run in all_runs if "hyperparameters" in run})
    if len(patiences) > 1:
        raise SystemExit(
            f"the runs below {folder} used different early-stopping patience values {patiences}; "
            "report each patience from its own folder"
        )
    _check_comparable(folder, all_runs)
    protocol = all_runs[0]["protocol"]
    # Full rank and LoRA have no variant, and chosen.get gives None for them too.
    runs = [run for run in all_runs if _variant(run) == chosen.get(run["method"])]
    by_setting: dict[tuple, dict[str, list[dict]]] = {}
    for run in runs:
        by_setting.setdefault((run["dataset"], run["task"]), {}).setdefault(run["method"], []).append(run)

    lines = [
        f"### Protocol `{protocol}`",
        "",
        f"ReLoRA*: {_variant_text(chosen['relora'])} per iteration; SST: {_variant_text(chosen['sst'])}.",
        "",
    ]
    for method in ("relora", "sst"):
        found = any(run["method"] == method for run in all_runs)
        if found and not any(run["method"] == method for run in runs):
            lines += [
                f"No {LABELS[method]} run below {folder} has that variant, so the {LABELS[method]} column is "
                "empty. The validation table at the end lists the variants found; pass the options of one "
                "of them.",
                "",
            ]
    lines.append("| setting | metric | full | LoRA | ReLoRA* | SST | full − best baseline | gap closed |")
    lines.append("|---|---|---|---|---|---|---|---|")
    gaps: dict[str, list[float]] = {"nc": [], "lp": []}
    unresolved = []
    for (dataset, task), methods in sorted(by_setting.items()):
        metrics = [PRIMARY[task]] + (["ap"] if task == "lp" else [])
        # The library's gap closed, so that this table and `hypersst hgnn` agree on every undefined case.
        setting_gaps = {gap["metric"]: gap for gap in compute_gaps(summarize(run for group in methods.values() for run in group))}
        for metric in metrics:
            cells = []
            for method in METHODS:
                values = [run["test"][metric] for run in methods.get(method, [])]
                if not values:
                    cells.append("—")
                    continue
                mean, std = _stats(values)
                cells.append(f"{mean:.2f} ± " + ("n/a" if math.isnan(std) else f"{std:.2f}"))
            result = setting_gaps.get(metric, {"value": math.nan, "note": "needs sst"})
            gap = 100 * result["value"]
            if len(methods) == 4 and metric == PRIMARY[task]:
                gaps[task].append(gap)
            gap_text = f"n/a ({result['note']})" if math.isnan(gap) else f"{gap:.1f} %"
            difference = result.get("full_minus_baseline")
            difference_text = "—"
            if difference is not None:
                standard_error = result["full_minus_baseline_se"]
                difference_text = f"{100 * difference:.2f}" + ("" if standard_error is None else f" ± {100 * standard_error:.2f}")
            if result.get("resolved") is False:
                gap_text += " †"
                unresolved.append(f"{dataset} {task.upper()} ({metric})")
            lines.append(
                f"| {dataset} {task.upper()} | {metric} | " + " | ".join(cells) + f" | {difference_text} | {gap_text} |"
            )
    lines.append("")
    lines.append(
        "full − best baseline: the gap closed's denominator in points, ± its standard error over seeds. "
        "† marks a denominator under twice its standard error: the seeds do not resolve that gap"
        + (f" ({', '.join(unresolved)})." if unresolved else "; no setting has one here.")
    )
    lines.append("")
    for task in ("nc", "lp"):
        values = [gap for gap in gaps[task] if not math.isnan(gap)]
        if values:
            lines.append(
                f"- average gap closed, {task.upper()} ({PRIMARY[task]}): **{statistics.mean(values):.1f} %** over "
                f"{len(values)} setting{'s' if len(values) > 1 else ''} (SST paper: {PAPER_GAP[task]} %); "
                "with each setting capped at 100 %: "
                f"{statistics.mean(min(value, 100.0) for value in values):.1f} %"
            )
    lines.append("")

    reference_rows = []
    for (dataset, task), methods in sorted(by_setting.items()):
        full_runs = methods.get("full", [])
        reference = REFERENCE.get((dataset, task))
        if not full_runs or reference is None:
            continue
        metric = PRIMARY[task]
        mean, std = _stats([run["test"][metric] for run in full_runs])
        spread = "n/a" if math.isnan(std) else f"{std:.2f}"
        ref_mean, ref_sd = reference[metric]
        within = abs(mean - ref_mean) <= max(ref_sd, 1.0)
        seconds = sum(run["seconds"] for run in full_runs) / sum(run["epochs_run"] for run in full_runs)
        reference_rows.append(
            f"| {dataset} {task.upper()} ({metric}) | {mean:.2f} ± {spread} | {ref_mean:.2f} ± {ref_sd:.2f} | "
            f"{'yes' if within else 'no'} | {seconds:.3f} | {reference['seconds_per_epoch']:.3f} |"
        )
    if reference_rows:
        lines.append("| setting | full rank (hypersst) | HyboNet code | within max(sd, 1 point)? | s/epoch hypersst | s/epoch HyboNet |")
        lines.append("|---|---|---|---|---|---|")
        lines.extend(reference_rows + [""])
    lines.extend(_validation_table(all_runs))
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "folders",
        nargs="+",
        type=Path,
        help="folders searched recursively for the results.json files of `hypersst hgnn`, one folder per protocol",
    )
    for method in ("relora", "sst"):
        parser.add_argument(
            f"--{method}-steps",
            type=int,
            default=SST_STEPS_PER_ITERATION,
            help=f"iteration length of the {LABELS[method]} runs in the main table (default: {SST_STEPS_PER_ITERATION})",
        )
        warmup = WARMUP_STEPS[method]
        parser.add_argument(
            f"--{method}-warmup",
            type=int,
            default=warmup,
            help=f"warm-up steps per iteration of the {LABELS[method]} runs in the main table (default: {warmup})",
        )
        parser.add_argument(
            f"--{method}-state-reset",
            choices=STATE_RESETS,
            default=SST_STATE_RESET,
            help=f"optimizer-state reset of the {LABELS[method]} runs in the main table (default: {SST_STATE_RESET})",
        )
        parser.add_argument(
            f"--{method}-warmup-scope",
            choices=WARMUP_SCOPES,
            default=SST_WARMUP_SCOPE,
            help=f"parameter groups warmed up in the {LABELS[method]} runs in the main table (default: {SST_WARMUP_SCOPE})",
        )
    # Options of the SST runs in the main table that ReLoRA* does not have: (name, type or choices,
    # default, description, default as shown in the help).
    sst_only = (
        ("vector-lr-scale", {"type": float}, SST_VECTOR_LR_SCALE, "vector learning-rate scale", f"{SST_VECTOR_LR_SCALE:g}"),
        ("vector-lr-rule", {"choices": VECTOR_LR_RULES}, SST_VECTOR_LR_RULE, "vector learning-rate rule", SST_VECTOR_LR_RULE),
        ("iterations-per-round", {"type": int}, SST_ITERATIONS_PER_ROUND, "iterations per round", "ceil(k / r) per layer"),
        ("gradient", {"choices": GRADIENTS}, SST_GRADIENT, "vector gradient", SST_GRADIENT),
        ("sampling", {"choices": SAMPLINGS}, SST_SAMPLING, "sampling rule", SST_SAMPLING),
        (
            "value-lr-scale",
            {"type": float},
            SST_VALUE_LR_SCALE,
            "singular-value learning-rate scale",
            f"{SST_VALUE_LR_SCALE:g}",
        ),
    )
    for name, parse_options, default, description, default_text in sst_only:
        help_text = f"{description} of the SST runs in the main table (default: {default_text})"
        parser.add_argument(f"--sst-{name}", **parse_options, default=default, help=help_text)
    args = parser.parse_args(argv)
    sst_options = (
        args.sst_vector_lr_scale,
        args.sst_vector_lr_rule,
        args.sst_state_reset,
        args.sst_iterations_per_round,
        args.sst_gradient,
        args.sst_sampling,
        args.sst_value_lr_scale,
        args.sst_warmup_scope,
    )
    chosen = {
        "relora": (
            args.relora_steps, args.relora_warmup, None, None, args.relora_state_reset, None, None, None, None, args.relora_warmup_scope
        ),
        "sst": (args.sst_steps, args.sst_warmup, *sst_options),
    }
    print("\n".join(report(folder, chosen) for folder in args.folders))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
