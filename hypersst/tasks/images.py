"""Training loop for image classification with every training method."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Optional

import torch
from torch import nn

from hypersst.config import SSTConfig
from hypersst.data.images import ImageSplits
from hypersst.lowrank import apply_lowrank, make_galore_optimizer
from hypersst.models.mlp import MLP
from hypersst.schedule import SSTScheduler

__all__ = ["ImageRunConfig", "train_image_classifier"]

IMAGE_METHODS = ("full", "lora", "relora", "sst", "galore")


@dataclass(frozen=True)
class ImageRunConfig:
    """Settings of one MLP run; every method shares them so that only the weight parameterization differs.

    Args:
        hidden_features: MLP width ``d``.
        depth: number of hidden layers; all of them are converted, the output head stays full-rank.
        epochs: passes over the training set.
        batch_size: rows per optimizer step.
        lr: AdamW learning rate (every method).
        weight_decay: decoupled weight decay.
        steps_per_iteration: SST and ReLoRA* iteration length ``T3``.
        warmup_steps: per-iteration warm-up of SST and ReLoRA*.
        galore_update_gap: steps between GaLore projection refreshes.
    """

    hidden_features: int = 256
    depth: int = 3
    epochs: int = 20
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 0.0
    steps_per_iteration: int = 50
    warmup_steps: int = 5
    galore_update_gap: int = 50


def _evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    model.eval()
    with torch.no_grad():
        accuracy = (model(x).argmax(dim=1) == y).double().mean().item()
    model.train()
    return accuracy


def train_image_classifier(
    data: ImageSplits,
    method: str,
    rank: Optional[int],
    *,
    seed: int = 0,
    config: ImageRunConfig = ImageRunConfig(),
) -> Dict[str, object]:
    """Train an :class:`~hypersst.models.mlp.MLP` on ``data`` with one training method.

    Args:
        data: the image splits.
        method: ``"full"``, ``"lora"``, ``"relora"``, ``"sst"`` or ``"galore"``.
        rank: rank of the low-rank methods (ignored by ``"full"``).
        seed: seed of the initialization, the batch order and the SST sampler.
        config: shared run settings.

    Returns:
        A dictionary with ``test_accuracy``, ``train_loss`` (mean over the last epoch), the per-epoch
        ``history`` of losses and accuracies, and the parameter ``report`` of the conversion.
    """
    if method not in IMAGE_METHODS:
        raise ValueError(f"unknown method {method!r}; expected one of {IMAGE_METHODS}")
    torch.manual_seed(seed)
    model = MLP(data.num_features, config.hidden_features, data.num_classes, depth=config.depth)
    conversion_rank = None if method == "full" else rank
    report = apply_lowrank(model, method, conversion_rank, exclude=("head",))
    if method == "galore":
        optimizer = make_galore_optimizer(
            model, rank, config.lr, update_proj_gap=config.galore_update_gap, exclude=("head",),
            weight_decay=config.weight_decay,
        )
    else:
        params = [p for p in model.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    scheduler = None
    if method in ("sst", "relora"):
        sst_config = SSTConfig(
            rank=rank,
            steps_per_iteration=config.steps_per_iteration,
            warmup_steps=config.warmup_steps,
            seed=seed,
        )
        scheduler = SSTScheduler(model, optimizer, sst_config)

    generator = torch.Generator().manual_seed(seed)
    loss_fn = nn.CrossEntropyLoss()
    history: List[Dict[str, float]] = []
    n = data.x_train.shape[0]
    for epoch in range(config.epochs):
        order = torch.randperm(n, generator=generator)
        total, batches = 0.0, 0
        for start in range(0, n, config.batch_size):
            batch = order[start : start + config.batch_size]
            optimizer.zero_grad(set_to_none=True)
            loss = loss_fn(model(data.x_train[batch]), data.y_train[batch])
            loss.backward()
            optimizer.step()
            if scheduler is not None:
                scheduler.step()
            total += loss.item()
            batches += 1
        history.append({"epoch": epoch + 1, "train_loss": total / batches})
    accuracy = _evaluate(model, data.x_test, data.y_test)
    history[-1]["test_accuracy"] = accuracy
    return {
        "method": method,
        "rank": rank,
        "seed": seed,
        "test_accuracy": accuracy,
        "train_loss": history[-1]["train_loss"],
        "history": history,
        "report": report,
    }
