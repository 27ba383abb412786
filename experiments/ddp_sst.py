"""Train an SST MLP on scikit-learn's digits with DistributedDataParallel.

Each process trains on its own shard of every batch; DDP averages the gradients, and every process builds
``SSTConfig`` with the same seed, so all ranks draw the same active triplets and stay identical. The
script starts its processes itself (``torch.multiprocessing.spawn`` with the gloo backend and a
file-based rendezvous, so no TCP port is opened). Under ``torchrun`` the same training function applies
unchanged, with ``init_method="env://"``.

Usage::

    python experiments/ddp_sst.py --world-size 2 --steps 40 --out results/ddp_sst.json
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import tempfile
import time
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from hypersst import SSTConfig, SSTScheduler, apply_lowrank
from hypersst.data.images import load_digits
from hypersst.models.mlp import MLP


def train(rank: int, world_size: int, init_file: str, steps: int, out: str, timeout: float) -> None:
    """Train on this rank's shard and write the final state summary to ``out.<rank>``."""
    torch.set_num_threads(1)
    dist.init_process_group(
        "gloo",
        init_method=f"file://{init_file}",
        rank=rank,
        world_size=world_size,
        timeout=datetime.timedelta(seconds=timeout),
    )
    data = load_digits(seed=0)
    torch.manual_seed(0)  # the same initial weights on every rank
    model = MLP(data.num_features, 64, data.num_classes, depth=2)
    apply_lowrank(model, "sst", 8, exclude=("head",))
    ddp = DistributedDataParallel(model)
    optimizer = torch.optim.AdamW(ddp.parameters(), lr=3e-3)
    scheduler = SSTScheduler(model, optimizer, SSTConfig(rank=8, steps_per_iteration=10, warmup_steps=2, seed=5))

    generator = torch.Generator().manual_seed(0)
    losses = []
    for _ in range(steps):
        batch = torch.randint(0, data.x_train.shape[0], (64,), generator=generator)
        shard = batch[rank::world_size]
        optimizer.zero_grad()
        loss = nn.functional.cross_entropy(ddp(data.x_train[shard]), data.y_train[shard])
        loss.backward()
        optimizer.step()
        scheduler.step()
        losses.append(loss.item())

    summary = {
        "rank": rank,
        "first_loss": sum(losses[:5]) / 5,
        "last_loss": sum(losses[-5:]) / 5,
        "active_indices": [layer.active_indices.tolist() for _, layer in scheduler.sst_layers],
        "parameters": [p.detach().double().sum().item() for p in model.parameters()],
        "iterations": scheduler.iteration,
    }
    Path(f"{out}.{rank}").write_text(json.dumps(summary))
    # Release DDP's reducer while the process group still exists: destroying the group first left its
    # destructor waiting on gloo in some runs, so the rank never exited.
    dist.barrier()
    del ddp
    dist.destroy_process_group()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="SST under DistributedDataParallel on digits")
    parser.add_argument("--world-size", type=int, default=2, help="number of processes")
    parser.add_argument("--steps", type=int, default=40, help="optimizer steps")
    parser.add_argument("--out", type=Path, default=Path("results/ddp_sst.json"), help="output JSON file")
    parser.add_argument(
        "--timeout", type=float, default=240.0, help="seconds before the ranks are stopped and the run fails"
    )
    args = parser.parse_args(argv)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as folder:
        init_file = os.path.join(folder, "rendezvous")
        context = mp.start_processes(
            train,
            args=(args.world_size, init_file, args.steps, str(args.out), args.timeout),
            nprocs=args.world_size,
            join=False,
            start_method="spawn",
        )
        deadline = time.monotonic() + args.timeout
        try:
            while not context.join(timeout=1.0):
                if time.monotonic() > deadline:
                    raise TimeoutError(f"the {args.world_size} ranks did not finish within {args.timeout} s")
        finally:
            # Stop ranks that are still alive (after a timeout or a failed rank) so none outlives the run.
            for process in context.processes:
                if process.is_alive():
                    process.kill()
    summaries = []
    for rank in range(args.world_size):
        part = Path(f"{args.out}.{rank}")
        summaries.append(json.loads(part.read_text()))
        part.unlink()
    args.out.write_text(json.dumps(summaries, indent=2))
    for summary in summaries:
        print(f"rank {summary['rank']}: loss {summary['first_loss']:.3f} -> {summary['last_loss']:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
