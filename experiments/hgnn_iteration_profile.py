"""Print how the training loss of ReLoRA* and SST runs moves within an iteration.

Reads the per-epoch ``history`` of every run in the given ``results.json`` files, or in the files below
given folders, as written by ``hypersst hgnn``. For each run it prints the mean training loss at each
position in the iteration, over the epochs from ``--skip`` on. Position 0 is the first step of an
iteration. Its loss is computed with the weights left by the previous iteration, after the resampling or
merge, so a rise from position 0 to position 1 is the effect of the first step.

Usage::

    python experiments/hgnn_iteration_profile.py results/hgnn/clean/variants --dataset airport --task nc
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path


def _result_files(paths: list[Path]) -> list[Path]:
    files = []
    for path in paths:
        if path.is_dir():
            files.extend(sorted(path.rglob("results.json")))
        elif path.is_file():
            files.append(path)
        else:
            raise SystemExit(f"{path} not found: pass a results.json file or a folder written by hypersst hgnn --out")
    if not files:
        raise SystemExit(f"no results.json found in {', '.join(str(path) for path in paths)}; run hypersst hgnn with --out there first")
    return files


def loss_by_position(history: dict, steps: int, skip: int) -> list[float]:
    """Return the mean training loss at each position ``0 .. steps - 1`` of the iteration.

    Raises:
        ValueError: if no epoch at or after ``skip`` was recorded.
    """
    by_position: dict[int, list[float]] = {}
    for epoch, loss in zip(history["epoch"], history["train_loss"]):
        if epoch >= skip:
            by_position.setdefault(epoch % steps, []).append(loss)
    if not by_position:
        last = history["epoch"][-1] if history["epoch"] else None
        raise ValueError(f"the run recorded no epoch at or after --skip {skip} (last epoch {last}); lower --skip")
    return [statistics.mean(by_position[position]) if position in by_position else float("nan") for position in range(steps)]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="+", type=Path, help="results.json files or folders that contain them")
    parser.add_argument("--dataset", default=None, help="keep only runs on this dataset (default: all)")
    parser.add_argument("--task", choices=("nc", "lp"), default=None, help="keep only runs of this task (default: both)")
    parser.add_argument("--skip", type=int, default=300, help="ignore the epochs before this one (default: 300)")
    args = parser.parse_args(argv)
    files = _result_files(args.paths)

    print("| file | run | warm-up | vector lr scale | loss at position 0 | 1 | 2 | 5 | 10 | last |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for path in files:
        for run in json.loads(path.read_text())["runs"]:
            sst = run.get("sst")
            if not sst or (args.dataset and run["dataset"] != args.dataset) or (args.task and run["task"] != args.task):
                continue
            steps = sst["steps_per_iteration"]
            try:
                losses = loss_by_position(run["history"], steps, args.skip)
            except ValueError as error:
                raise SystemExit(f"{path}: {run['dataset']} {run['task']} {run['method']} seed {run['seed']}: {error}")
            picked = [losses[position] for position in (0, 1, 2, 5, 10) if position < steps] + [losses[-1]]
            scale = sst.get("vector_lr_scale")
            label = f"{run['dataset']} {run['task'].upper()} {run['method']} seed {run['seed']}"
            cells = " | ".join(f"{loss:.3f}" for loss in picked)
            print(f"| {path.parent} | {label} | {sst['warmup_steps']} | {'—' if scale is None else f'{scale:g}'} | {cells} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
