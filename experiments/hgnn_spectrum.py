"""Compare the singular values of HyboNet's trained linear maps across training methods.

Trains one HyboNet model per method with ``hypersst.tasks.hgnn.run_hgnn`` for a fixed number of epochs,
which early stopping may cut short. For every LorentzLinear layer it then prints the singular values of the
dense weight after the last epoch: ``W`` for full rank, ``U diag(S) Vh`` for SST, and the merged weight
plus ``B A`` for LoRA and ReLoRA*. The column "within 4x" counts the singular values at least a quarter of
the largest, a rough count of the directions that the layer uses. The test metric is the run's, taken at
its best validation epoch. Singular values are computed in float64.

Usage::

    python experiments/hgnn_spectrum.py --dataset cora --task nc --methods full relora sst --epochs 1000
"""

from __future__ import annotations

import argparse
import os

import torch

import hypersst.tasks.hgnn as hgnn
from hypersst.nn.lorentz import LorentzLinear
from hypersst.tasks.reporting import TEST_METRICS


def layer_spectra(model: torch.nn.Module) -> list[tuple[str, tuple[int, int], list[float]]]:
    """Return ``(name, weight shape, singular values in descending order)`` of every LorentzLinear layer."""
    spectra = []
    with torch.no_grad():
        for name, module in model.named_modules():
            if isinstance(module, LorentzLinear):
                weight = module.linear.weight.detach().double()
                spectra.append((name, tuple(weight.shape), torch.linalg.svdvals(weight).tolist()))
    return spectra


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="cora", help="HGNN data set (default: cora)")
    parser.add_argument("--task", default="nc", choices=("nc", "lp"), help="task (default: nc)")
    parser.add_argument(
        "--methods", nargs="+", default=["full", "sst"], choices=("full", "lora", "relora", "sst"), help="methods to train (default: full sst)"
    )
    parser.add_argument("--rank", type=int, default=2, help="rank of the low-rank methods (default: 2)")
    parser.add_argument("--epochs", type=int, default=1000, help="epochs to train (default: 1000)")
    parser.add_argument("--seed", type=int, default=0, help="training seed (default: 0)")
    parser.add_argument("--protocol", default="hgcn", choices=("clean", "hgcn"), help="data splits (default: hgcn)")
    parser.add_argument("--top", type=int, default=10, help="largest singular values printed per layer (default: 10)")
    parser.add_argument("--data-root", default=os.environ.get("HYPERSST_DATA"), help="HGCN data folder (default: $HYPERSST_DATA)")
    parser.add_argument(
        "--sst-value-lr-scale",
        type=float,
        default=hgnn.SST_VALUE_LR_SCALE,
        help=f"learning-rate scale of SST's singular values (default: {hgnn.SST_VALUE_LR_SCALE:g})",
    )
    args = parser.parse_args(argv)

    built_models = []
    build_model = hgnn.build_model

    def recording_build_model(*positional, **keywords):
        model = build_model(*positional, **keywords)
        built_models.append(model)
        return model

    # run_hgnn calls the module attribute build_model, so replacing it records each model that a run builds.
    hgnn.build_model = recording_build_model
    print("| method | layer | shape | epochs run | test metric | within 4x | largest singular values |")
    print("|---|---|---|---|---|---|---|")
    for method in args.methods:
        built_models.clear()
        try:
            run = hgnn.run_hgnn(
                args.dataset,
                args.task,
                method,
                None if method == "full" else args.rank,
                args.seed,
                data_root=args.data_root,
                protocol=args.protocol,
                epochs=args.epochs,
                sst_value_lr_scale=args.sst_value_lr_scale,
                progress=False,
            )
        except (ValueError, FileNotFoundError) as error:
            raise SystemExit(str(error)) from error
        metric = TEST_METRICS[args.task][0]
        for name, shape, values in layer_spectra(built_models[-1]):
            within = sum(value >= values[0] / 4 for value in values)
            largest = ", ".join(f"{value:.2f}" for value in values[: args.top])
            print(
                f"| {method} | {name} | {shape[0]}×{shape[1]} | {run['epochs_run']} | {100 * run['test'][metric]:.1f} | "
                f"{within} | {largest} |"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
