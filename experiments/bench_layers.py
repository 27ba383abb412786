"""Layer benchmark: step time, optimizer-state bytes and peak memory of every training method.

For each width d and rank r = d/8, one d x d linear layer is trained on batches of 512 rows with AdamW
(GaLore: galore_torch.GaLoreAdamW), and each measure is reported as a ratio to full-rank training in the
same run. The time of one re-SVD of an SST layer is measured too, and amortized over one round
(T2 = d/r iterations of T3 = 200 steps).

Peak memory is the device allocator's peak on CUDA. On CPU, torch exposes no allocator statistics, so
each configuration runs in a fresh subprocess and the peak is the growth of the process's maximum
resident set size (``ru_maxrss``) during training, which includes allocator caching.

Usage::

    python experiments/bench_layers.py --sizes 256 512 1024 2048 --out results/bench_layers
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import torch
from torch import nn

METHODS = ("full", "lora", "relora", "sst", "galore")
BATCH_ROWS = 512
STEPS_PER_ITERATION = 200


def _state_bytes(optimizer: torch.optim.Optimizer) -> int:
    total = 0
    for state in optimizer.state.values():
        for value in state.values():
            if torch.is_tensor(value) and value.dim() > 0:
                total += value.numel() * value.element_size()
            elif hasattr(value, "ortho_matrix"):  # GaLore keeps its projector object in the state
                matrix = value.ortho_matrix
                tensors = matrix if isinstance(matrix, (list, tuple)) else [matrix]
                total += sum(t.numel() * t.element_size() for t in tensors if torch.is_tensor(t))
    return total


def _build(method: str, d: int, device: torch.device):
    from hypersst import SSTConfig, SSTScheduler
    from hypersst.lowrank import apply_lowrank, make_galore_optimizer

    rank = d // 8
    model = nn.Sequential(nn.Linear(d, d)).to(device)
    report = apply_lowrank(model, method, None if method == "full" else rank)
    if method == "galore":
        optimizer = make_galore_optimizer(model, rank, 1e-3, update_proj_gap=STEPS_PER_ITERATION)
    else:
        optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    scheduler = None
    if method in ("sst", "relora"):
        config = SSTConfig(rank=rank, steps_per_iteration=STEPS_PER_ITERATION, warmup_steps=20)
        scheduler = SSTScheduler(model, optimizer, config)
    return model, optimizer, scheduler, report


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure(method: str, d: int, steps: int, device: torch.device) -> dict:
    """Time ``steps`` training steps of one configuration after two warm-up steps."""
    torch.manual_seed(0)
    model, optimizer, scheduler, report = _build(method, d, device)
    x = torch.randn(BATCH_ROWS, d, device=device)
    target = torch.randn(BATCH_ROWS, d, device=device)

    def step():
        optimizer.zero_grad(set_to_none=True)
        nn.functional.mse_loss(model(x), target).backward()
        optimizer.step()
        if scheduler is not None:
            scheduler.step()

    baseline_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        baseline_cuda = torch.cuda.memory_allocated(device)
    for _ in range(2):
        step()
    _synchronize(device)
    start = time.perf_counter()
    for _ in range(steps):
        step()
    _synchronize(device)
    seconds = (time.perf_counter() - start) / steps
    if device.type == "cuda":
        peak = torch.cuda.max_memory_allocated(device) - baseline_cuda
    else:
        peak = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - baseline_rss) * 1024
    result = {
        "method": method,
        "d": d,
        "rank": d // 8,
        "step_seconds": seconds,
        "optimizer_state_bytes": _state_bytes(optimizer),
        "peak_bytes": peak,
        "trainable_params": report.trainable_after,
        "gamma": report.gamma,
    }
    if method == "sst":
        layer = model[0]
        _synchronize(device)
        start = time.perf_counter()
        layer.resvd_()
        _synchronize(device)
        result["resvd_seconds"] = time.perf_counter() - start
        round_steps = STEPS_PER_ITERATION * layer.num_triplets // layer.rank
        result["resvd_fraction_of_round"] = result["resvd_seconds"] / (
            result["resvd_seconds"] + round_steps * seconds
        )
    return result


def _run_isolated(method: str, d: int, steps: int, device: str) -> dict:
    command = [sys.executable, __file__, "--single", method, str(d), "--steps", str(steps), "--device", device]
    output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return json.loads(output.strip().splitlines()[-1])


def _format_table(results: list) -> str:
    lines = [
        "| d | r | method | step (ms) | step / full | opt. state (MiB) | state / full | Γ | peak (MiB) | peak / full |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    by_size = {}
    for row in results:
        by_size.setdefault(row["d"], {})[row["method"]] = row
    for d, rows in sorted(by_size.items()):
        full = rows["full"]
        for method in METHODS:
            row = rows.get(method)
            if row is None:
                continue
            state_ratio = row["optimizer_state_bytes"] / full["optimizer_state_bytes"]
            peak_ratio = row["peak_bytes"] / full["peak_bytes"] if full["peak_bytes"] > 0 else float("nan")
            lines.append(
                f"| {d} | {row['rank']} | {method} | {1e3 * row['step_seconds']:.1f} | "
                f"{row['step_seconds'] / full['step_seconds']:.2f} | {row['optimizer_state_bytes'] / 2**20:.2f} | "
                f"{state_ratio:.3f} | {row['gamma']:.3f} | {row['peak_bytes'] / 2**20:.1f} | {peak_ratio:.2f} |"
            )
    lines.append("")
    lines.append("| d | re-SVD (s) | re-SVD share of one round (T3 = 200, T2 = d/r) |")
    lines.append("|---|---|---|")
    for d, rows in sorted(by_size.items()):
        if "sst" in rows:
            row = rows["sst"]
            lines.append(f"| {d} | {row['resvd_seconds']:.3f} | {100 * row['resvd_fraction_of_round']:.2f}% |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512, 1024, 2048], help="layer widths d")
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    parser.add_argument("--steps", type=int, default=10, help="timed steps per configuration")
    parser.add_argument("--repeats", type=int, default=3, help="runs per configuration; the fastest counts")
    parser.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--out", type=Path, default=Path("results/bench_layers"), help="output folder")
    parser.add_argument("--single", nargs=2, metavar=("METHOD", "D"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
        os.environ["OMP_NUM_THREADS"] = str(args.threads)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    if args.single:
        method, d = args.single[0], int(args.single[1])
        print(json.dumps(measure(method, d, args.steps, torch.device(args.device))))
        return 0

    results = []
    for d in args.sizes:
        for method in args.methods:
            runs = [_run_isolated(method, d, args.steps, args.device) for _ in range(args.repeats)]
            best = min(runs, key=lambda run: run["step_seconds"])
            best["peak_bytes"] = min(run["peak_bytes"] for run in runs)
            results.append(best)
            print(f"d={d} {method}: {1e3 * best['step_seconds']:.1f} ms/step", file=sys.stderr, flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(results, indent=2))
    table = _format_table(results)
    (args.out / "table.md").write_text(table + "\n")
    print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
