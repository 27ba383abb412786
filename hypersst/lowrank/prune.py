"""Singular-value pruning: keep the top singular triplets of each linear layer."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable, Optional, Tuple

import torch
from torch import Tensor, nn

from hypersst._validation import linear_from_weight
from hypersst.lowrank._targets import TargetSpec, find_targets, module_occurrences, replace_module, sst_linear_class
from hypersst.lowrank.lora import LoRALinear, wide_dtype
from hypersst.lowrank.two_factor import TwoFactorLinear

__all__ = ["PrunedLayer", "PruneReport", "prune_singular_values"]


@dataclass(frozen=True)
class PrunedLayer:
    """One layer pruned by :func:`prune_singular_values`.

    Attributes:
        name: qualified name of the layer.
        num_triplets: number of singular triplets of its weight, ``min(in_features, out_features)``.
        kept: number of triplets kept.
        energy_kept: ``sum(s[:kept]**2) / sum(s**2)`` (1.0 for an all-zero weight).
        weight_entries_before: entries of the dense weight, ``in_features * out_features``.
        weight_entries_after: entries stored after pruning: ``kept * (in_features + out_features)`` for
            two factors, or ``in_features * out_features`` when the layer stays dense.
        factored: whether the layer became a :class:`TwoFactorLinear`. A layer whose two factors would hold
            at least as many entries as its dense weight gets the truncated weight as a dense
            ``nn.Linear`` instead.
    """

    name: str
    num_triplets: int
    kept: int
    energy_kept: float
    weight_entries_before: int
    weight_entries_after: int
    factored: bool = True


@dataclass(frozen=True)
class PruneReport:
    """Per-layer record of what :func:`prune_singular_values` kept."""

    layers: Tuple[PrunedLayer, ...]

    @property
    def weight_entries_before(self) -> int:
        """Weight entries of the pruned layers before pruning."""
        return sum(layer.weight_entries_before for layer in self.layers)

    @property
    def weight_entries_after(self) -> int:
        """Weight entries of the pruned layers after pruning."""
        return sum(layer.weight_entries_after for layer in self.layers)

    def __str__(self) -> str:
        lines = [
            f"prune_singular_values: {len(self.layers)} layers, weight entries "
            f"{self.weight_entries_before:,} -> {self.weight_entries_after:,}"
        ]
        for layer in self.layers:
            lines.append(
                f"  {layer.name}: kept {layer.kept}/{layer.num_triplets} triplets, "
                f"energy {layer.energy_kept:.4f}"
            )
        return "\n".join(lines)


def _check_criterion(keep_count, keep_ratio, keep_energy) -> None:
    given = [label for label, value in (("keep_count", keep_count), ("keep_ratio", keep_ratio),
                                        ("keep_energy", keep_energy)) if value is not None]
    if len(given) != 1:
        raise ValueError(
            f"prune_singular_values: pass exactly one of keep_count, keep_ratio and keep_energy, got "
            f"{given or 'none'}"
        )
    if keep_count is not None and (isinstance(keep_count, bool) or not isinstance(keep_count, int) or keep_count < 1):
        raise ValueError(f"prune_singular_values: keep_count must be an int >= 1, got {keep_count!r}")
    for label, value in (("keep_ratio", keep_ratio), ("keep_energy", keep_energy)):
        if value is not None and not (isinstance(value, (int, float)) and not isinstance(value, bool) and 0 < value <= 1):
            raise ValueError(f"prune_singular_values: {label} must be a number in (0, 1], got {value!r}")


def _num_kept(S: Tensor, keep_count, keep_ratio, keep_energy) -> int:
    k = S.numel()
    if keep_count is not None:
        return min(keep_count, k)
    if keep_ratio is not None:
        return max(1, min(k, math.ceil(keep_ratio * k)))
    energy = torch.cumsum(S.double() ** 2, 0)
    if energy[-1] == 0:
        # An all-zero weight has no energy to keep, and one zero triplet represents it exactly.
        return 1
    # The last cumulative sum is the total itself, so the fraction reaches exactly 1.0 there and a
    # keep_energy of 1.0 always finds a count.
    fraction = energy / energy[-1]
    return min(k, int((fraction < keep_energy).sum()) + 1)


def _dense_weight(module: nn.Module) -> Tensor:
    return module.weight.detach()


def prune_singular_values(
    model: nn.Module,
    *,
    keep_count: Optional[int] = None,
    keep_ratio: Optional[float] = None,
    keep_energy: Optional[float] = None,
    target_modules: TargetSpec = None,
    exclude: Iterable[str] = (),
) -> PruneReport:
    """Replace each linear layer of ``model`` by a :class:`TwoFactorLinear` that keeps its top singular triplets.

    A layer whose two factors would not be smaller than its dense weight (``kept * (in + out) >= in * out``)
    becomes a dense ``nn.Linear`` holding the truncated weight instead, so pruning never enlarges a layer.

    For each target, the dense weight (merged for LoRA and ReLoRA*, ``U diag(S) Vh`` for SST) is
    decomposed by ``torch.linalg.svd`` in float32 or wider, truncated, and split as
    ``left = U_r diag(sqrt(s_r))`` and ``right = diag(sqrt(s_r)) Vh_r`` in the layer's dtype. The bias is
    copied. Keeping every triplet reproduces the layer's outputs up to rounding. Exactly one criterion
    must be given.

    Args:
        model: the model to prune in place; the model itself is never replaced.
        keep_count: number of triplets to keep per layer, capped at the layer's ``min(in, out)``.
        keep_ratio: fraction of each layer's ``min(in, out)`` triplets to keep, rounded up (at least 1).
        keep_energy: keep the fewest triplets whose squared singular values sum to at least this
            fraction of the total ``sum(s**2)``.
        target_modules: ``None`` (default) for every ``nn.Linear``, LoRA, ReLoRA*, SST and two-factor
            layer; otherwise as in :func:`~hypersst.lowrank.apply_lowrank`.
        exclude: names of modules to skip, as in :func:`~hypersst.lowrank.apply_lowrank`.

    Returns:
        A :class:`PruneReport`.

    Raises:
        ValueError: if not exactly one valid criterion is given, or a weight is not finite (naming the
            layer).
        RuntimeError: if the SVD of a layer fails (naming the layer).
        TypeError: if a module named by ``target_modules`` is not a linear layer.
    """
    caller = "prune_singular_values"
    _check_criterion(keep_count, keep_ratio, keep_energy)
    sst_linear = sst_linear_class()
    kinds = (nn.Linear, LoRALinear, TwoFactorLinear) + ((sst_linear,) if sst_linear is not None else ())
    targets = find_targets(model, kinds, target_modules, exclude, caller)

    replacements = []
    records = []
    for name, module in targets:
        weight = _dense_weight(module)
        if not torch.isfinite(weight).all():
            raise ValueError(
                f"{caller}: layer {name!r} has a weight with NaN or Inf values; it cannot be decomposed"
            )
        try:
            U, S, Vh = torch.linalg.svd(weight.to(wide_dtype(weight.dtype)), full_matrices=False)
        except RuntimeError as error:
            raise RuntimeError(f"{caller}: the SVD of layer {name!r} failed: {error}") from error

        kept = _num_kept(S, keep_count, keep_ratio, keep_energy)
        total = float((S.double() ** 2).sum())
        energy_kept = float((S[:kept].double() ** 2).sum()) / total if total > 0 else 1.0
        root = S[:kept].sqrt()
        left = (U[:, :kept] * root).to(weight.dtype)
        right = (root[:, None] * Vh[:kept]).to(weight.dtype)
        bias = module.bias.detach() if module.bias is not None else None
        out_features, in_features = weight.shape
        dense_entries = in_features * out_features
        factored = kept * (in_features + out_features) < dense_entries
        if factored:
            replacement = TwoFactorLinear.from_factors(left, right, bias)
        else:
            replacement = linear_from_weight(left @ right, bias)
        replacements.append((module, replacement))
        entries_after = kept * (in_features + out_features) if factored else dense_entries
        records.append(PrunedLayer(name, S.numel(), kept, energy_kept, dense_entries, entries_after, factored))

    occurrences = module_occurrences(model)
    for old, new in replacements:
        replace_module(occurrences, old, new)
    return PruneReport(tuple(records))
