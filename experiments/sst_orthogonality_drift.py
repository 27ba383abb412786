"""Measure how far SST's factors drift from an SVD between two re-SVDs of a HyboNet run.

Trains one HyboNet model with SST (``hypersst.tasks.hgnn.run_hgnn``) for each given number of iterations
per round and, just before every re-SVD from ``--skip`` on, measures each SST layer:

* the largest ``|cos|`` between two distinct left singular vectors (columns of ``U``), and the same for the
  right ones (rows of ``Vh``); both are 0 right after a re-SVD;
* the relative error ``|sort(S) - svdvals(W)| / |svdvals(W)|`` of the stored singular values against
  those of the layer's dense weight ``W = U diag(S) Vh``.

It prints the mean of each over the measured re-SVDs, per layer. Everything is computed in float64.

Usage::

    python experiments/sst_orthogonality_drift.py --dataset cora --task nc --iterations-per-round auto 2
"""

from __future__ import annotations

import argparse
import os
import statistics

import torch

from hypersst.schedule import SSTScheduler
from hypersst.spectral import SSTLinear


def _largest_cosine(unit_rows: torch.Tensor) -> float:
    """Return the largest ``|cos|`` between two distinct rows of ``unit_rows``, whose rows have unit norm."""
    cosines = (unit_rows @ unit_rows.T).abs()
    cosines.fill_diagonal_(0.0)
    return float(cosines.max())


def measure(layer: SSTLinear) -> tuple[float, float, float]:
    """Return ``(largest |cos| of U, largest |cos| of Vh, relative error of S)`` of one SST layer.

    The factors are measured as the coming ``post_step_`` leaves them: unit vectors and ``S >= 0``.
    """
    with torch.no_grad():
        U, Vh = layer.U.double(), layer.Vh.double()
        U, Vh = U / U.norm(dim=0, keepdim=True), Vh / Vh.norm(dim=1, keepdim=True)
        S = layer.S.detach().double().clamp(min=0.0)
        true = torch.linalg.svdvals((U * S) @ Vh)
        error = torch.linalg.norm(torch.sort(S, descending=True).values - true) / torch.linalg.norm(true)
    return _largest_cosine(U.T), _largest_cosine(Vh), float(error)


class DriftRecorder(SSTScheduler):
    """SSTScheduler that measures every SST layer whose round ends at the coming step."""

    skip = 0
    records: list[tuple[str, tuple[float, float, float]]] = []

    def step(self) -> None:
        ends_iteration = (self.step_count + 1) % self.config.steps_per_iteration == 0
        if ends_iteration and self.step_count + 1 >= self.skip:
            for name, layer in self.sst_layers:
                if (self.iteration + 1) % self.iterations_per_round(layer) == 0:
                    self.records.append((name, measure(layer)))
        super().step()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="cora", help="HGNN data set (default: cora)")
    parser.add_argument("--task", default="nc", choices=("nc", "lp"), help="task (default: nc)")
    parser.add_argument(
        "--iterations-per-round",
        nargs="+",
        default=["auto"],
        help="values to compare; 'auto' means ceil(k / r) per layer (default: auto)",
    )
    parser.add_argument("--epochs", type=int, default=800, help="epochs to train (default: 800)")
    parser.add_argument("--skip", type=int, default=200, help="first step measured (default: 200)")
    parser.add_argument("--seed", type=int, default=0, help="training seed (default: 0)")
    parser.add_argument("--data-root", default=os.environ.get("HYPERSST_DATA"), help="HGCN data folder (default: $HYPERSST_DATA)")
    args = parser.parse_args(argv)

    import hypersst.schedule
    from hypersst.tasks.hgnn import run_hgnn

    # run_hgnn builds its scheduler from this module attribute when it runs.
    hypersst.schedule.SSTScheduler = DriftRecorder
    DriftRecorder.skip = args.skip
    lines = []
    for text in args.iterations_per_round:
        per_round = None if text == "auto" else int(text)
        DriftRecorder.records = []
        try:
            run = run_hgnn(
                args.dataset, args.task, "sst", 2, args.seed, data_root=args.data_root, epochs=args.epochs, sst_iterations_per_round=per_round
            )
        except ValueError as error:
            raise SystemExit(str(error)) from error
        by_layer: dict[str, list[tuple[float, float, float]]] = {}
        for name, values in DriftRecorder.records:
            by_layer.setdefault(name, []).append(values)
        if not by_layer:
            raise SystemExit(
                f"no re-SVD from step {args.skip} on: the run stopped after {run['epochs_run']} epochs (early stopping "
                "or --epochs); lower --skip, or raise --epochs if the run reached it"
            )
        for name, rows in by_layer.items():
            means = [statistics.mean(row[index] for row in rows) for index in range(3)]
            lines.append(f"| {text} | {name} | {len(rows)} | " + " | ".join(f"{mean:.3f}" for mean in means) + " |")
    print("| iterations per round | layer | re-SVDs measured | largest cos, U | largest cos, Vh | S relative error |")
    print("|---|---|---|---|---|---|")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
