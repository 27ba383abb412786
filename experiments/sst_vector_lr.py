"""Exploratory: HyboNet with SST when the active singular vectors get a smaller learning rate.

With Adam, each coordinate of an active unit vector moves by about the learning rate per step, so a vector
of dimension n changes by about ``lr * sqrt(n)`` relative to its unit length, far more than a dense weight
of the same layer does relative to its norm. This script reruns ``hypersst hgnn``'s SST setting with the
vectors (``Ut_active``, ``Vh_active``) in their own parameter group at ``lr * scale``, everything else
unchanged, to test whether that step size explains SST's gap on Cora and Airport.

It selects nothing on the test set: it reports test metrics for fixed scales given on the command line.

Usage::

    python experiments/sst_vector_lr.py --dataset cora --task nc --scales 1 0.3 --seeds 3
"""

from __future__ import annotations

import argparse
import statistics

import torch

import hypersst.tasks.hgnn as hgnn

VECTOR_SUFFIXES = ("Ut_active", "Vh_active")


def _optimizer_factory(scale: float):
    base = hgnn.build_optimizer

    def build(model, hyperparameters):
        optimizer, decayed = base(model, hyperparameters)
        if scale == 1.0:
            return optimizer, decayed
        vectors = [param for name, param in model.named_parameters() if name.endswith(VECTOR_SUFFIXES)]
        moved = {id(param) for param in vectors}
        for group in optimizer.param_groups:
            group["params"] = [param for param in group["params"] if id(param) not in moved]
        # Unit vectors are renormalized after every step, so weight decay would have no effect on them.
        optimizer.add_param_group({"params": vectors, "lr": hyperparameters.lr * scale, "decoupled_weight_decay": 0.0})
        return optimizer, [param for param in decayed if id(param) not in moved]

    return build


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="SST with a separate learning rate for its singular vectors")
    parser.add_argument("--dataset", default="cora", help="HGNN dataset (default: cora)")
    parser.add_argument("--task", default="nc", choices=("nc", "lp"), help="nc or lp (default: nc)")
    parser.add_argument("--scales", type=float, nargs="+", default=[1.0, 0.3], help="vector lr / base lr")
    parser.add_argument("--seeds", type=int, default=3, help="seeds 0 .. N-1 (default: 3)")
    parser.add_argument("--rank", type=int, default=2, help="SST rank (default: 2)")
    parser.add_argument("--protocol", default="clean", choices=("clean", "hgcn"), help="split protocol")
    parser.add_argument("--data-root", default="../shared/data/hgnn", help="HGCN data folder")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    metric = "f1" if args.task == "nc" else "roc_auc"
    data = hgnn.load_graph(args.dataset, args.task, protocol=args.protocol, data_root=args.data_root)
    original = hgnn.build_optimizer
    try:
        for scale in args.scales:
            hgnn.build_optimizer = _optimizer_factory(scale)
            values = []
            for seed in range(args.seeds):
                record = hgnn.run_hgnn(args.dataset, args.task, "sst", args.rank, seed, data=data, protocol=args.protocol)
                values.append(100 * record["test"][metric])
                print(f"scale {scale}: seed {seed} test {metric} {values[-1]:.2f} (best epoch {record['best_epoch']})", flush=True)
            spread = statistics.stdev(values) if len(values) > 1 else float("nan")
            print(f"scale {scale}: test {metric} {statistics.mean(values):.2f} ± {spread:.2f} over {len(values)} seeds")
    finally:
        hgnn.build_optimizer = original
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
