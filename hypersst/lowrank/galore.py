"""GaLore baseline: full-rank weights trained with gradient low-rank projection (galore-torch)."""

from __future__ import annotations

import os
from typing import Iterable

from torch import nn

from hypersst.lowrank._targets import TargetSpec, find_targets
from hypersst._validation import check_rank

__all__ = ["make_galore_optimizer"]


def _import_galore():
    # galore-torch imports bitsandbytes, which looks up a kernel on the Hugging Face Hub at import time;
    # offline mode keeps that lookup local. A value the user already set is kept.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        import galore_torch
    except ImportError as error:
        raise ImportError(
            "make_galore_optimizer needs the galore-torch package; install it with "
            "pip install 'hypersst[exp]'"
        ) from error
    return galore_torch


def make_galore_optimizer(
    model: nn.Module,
    rank: int,
    lr: float,
    *,
    update_proj_gap: int = 200,
    scale: float = 0.25,
    weight_decay: float = 0.0,
    target_modules: TargetSpec = None,
    exclude: Iterable[str] = (),
    **optimizer_options,
):
    """Build a ``galore_torch.GaLoreAdamW`` that projects the gradients of the model's linear weights.

    The 2-D weights of the target ``nn.Linear`` layers form one parameter group whose gradients GaLore
    projects to ``rank`` dimensions, refreshing the projection every ``update_proj_gap`` steps. Every
    other trainable parameter (biases, embeddings, excluded layers) goes to a second group trained by
    plain AdamW.

    Args:
        model: the model to train; its layers stay ``nn.Linear``.
        rank: projection rank, ``1 <= rank <= min(in_features, out_features)`` for every target layer.
        lr: learning rate of both groups.
        update_proj_gap: steps between refreshes of the projection (default: 200).
        scale: factor on the projected-back update (default: 0.25).
        weight_decay: decoupled weight decay of both groups (default: 0.0).
        target_modules: which linear layers GaLore projects, as in
            :func:`~hypersst.lowrank.apply_lowrank` (default: every ``nn.Linear``).
        exclude: names of modules whose weights stay in the plain group.
        **optimizer_options: further ``GaLoreAdamW`` arguments, such as ``betas`` and ``eps``.

    Returns:
        The optimizer. Its per-parameter state contains a ``GaLoreProjector`` object besides tensors.

    Raises:
        ImportError: if galore-torch is not installed.
        ValueError: if ``rank`` is out of range for a target layer, ``update_proj_gap`` is not a positive
            int, or the model has no trainable parameter.
        TypeError: if ``rank`` is not an int or a module named by ``target_modules`` is not an ``nn.Linear``.
    """
    caller = "make_galore_optimizer"
    if isinstance(update_proj_gap, bool) or not isinstance(update_proj_gap, int) or update_proj_gap < 1:
        raise ValueError(f"{caller}: update_proj_gap must be an int >= 1, got {update_proj_gap!r}")
    targets = find_targets(model, (nn.Linear,), target_modules, exclude, caller)
    for name, linear in targets:
        check_rank(rank, linear.in_features, linear.out_features, f"{caller}: layer {name!r}")

    # Keyed by id so that a weight shared by two layers enters the group once.
    projected_by_id = {id(linear.weight): linear.weight for _, linear in targets if linear.weight.requires_grad}
    projected = list(projected_by_id.values())
    projected_ids = set(projected_by_id)
    plain = [param for param in model.parameters() if param.requires_grad and id(param) not in projected_ids]
    if not projected and not plain:
        raise ValueError(f"{caller}: the model has no trainable parameter")

    galore_torch = _import_galore()
    groups = []
    if plain:
        groups.append({"params": plain})
    if projected:
        groups.append(
            {"params": projected, "rank": rank, "update_proj_gap": update_proj_gap, "scale": scale, "proj_type": "std"}
        )
    return galore_torch.GaLoreAdamW(
        groups, lr=lr, weight_decay=weight_decay, no_deprecation_warning=True, **optimizer_options
    )
