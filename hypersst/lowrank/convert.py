"""Build and convert linear layers for every training method: full rank, LoRA, ReLoRA*, SST and GaLore."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable, Optional, Tuple

from torch import nn

from hypersst.lowrank._targets import (
    TargetSpec,
    check_finite_weights,
    count_trainable,
    find_targets,
    module_occurrences,
    parameter_owners,
    replace_module,
    sst_linear_class,
)
from hypersst._validation import check_rank
from hypersst.lowrank.lora import LoRALinear, ReLoRALinear
from hypersst.lowrank.two_factor import TwoFactorLinear

__all__ = ["METHODS", "LowRankReport", "apply_lowrank", "convert_linear", "make_linear", "merge_lowrank"]

#: Training methods understood by :func:`make_linear`, :func:`convert_linear` and :func:`apply_lowrank`.
METHODS = ("full", "lora", "relora", "sst", "galore")

# Methods whose layer is a plain nn.Linear: GaLore trains full-rank weights and acts in the optimizer.
_DENSE_METHODS = ("full", "galore")


def _check_method(method, caller: str) -> None:
    if method not in METHODS:
        raise ValueError(f"{caller}: unknown method {method!r}; choose one of {', '.join(map(repr, METHODS))}")


def _require_sst(caller: str) -> type:
    sst_linear = sst_linear_class()
    if sst_linear is None:
        raise RuntimeError(f"{caller}: method 'sst' needs hypersst.spectral, which is not installed")
    return sst_linear


def make_linear(
    in_features: int,
    out_features: int,
    *,
    bias: bool = True,
    method: str = "full",
    rank: Optional[int] = None,
    **options,
) -> nn.Module:
    """Build a freshly initialized linear layer for a training method.

    Args:
        in_features: size of each input sample.
        out_features: size of each output sample.
        bias: if ``True`` (default), the layer has a bias.
        method: ``"full"`` or ``"galore"`` (an ``nn.Linear``; GaLore acts in the optimizer, see
            :func:`~hypersst.lowrank.make_galore_optimizer`), ``"lora"`` (:class:`LoRALinear`), ``"relora"``
            (:class:`ReLoRALinear`) or ``"sst"`` (:class:`hypersst.SSTLinear`).
        rank: rank of the layer, needed by ``"lora"``, ``"relora"`` and ``"sst"`` and ignored otherwise.
        **options: passed to the layer's constructor: ``device`` and ``dtype`` for every method,
            ``alpha`` for LoRA and ReLoRA*, ``gradient`` and ``vector_geometry`` for SST.

    Returns:
        The new layer.

    Raises:
        ValueError: if ``method`` is unknown, or ``rank`` is missing or out of range.
        TypeError: if ``rank`` is not an int.
    """
    _check_method(method, "make_linear")
    if method in _DENSE_METHODS:
        return nn.Linear(in_features, out_features, bias=bias, **options)
    if rank is None:
        raise ValueError(f"make_linear: method {method!r} needs a rank; pass rank=r with 1 <= r <= min(in, out)")
    check_rank(rank, in_features, out_features, f"make_linear({in_features}, {out_features}, method={method!r})")
    if method == "lora":
        return LoRALinear(in_features, out_features, rank, bias, **options)
    if method == "relora":
        return ReLoRALinear(in_features, out_features, rank, bias, **options)
    return _require_sst("make_linear")(in_features, out_features, rank, bias, **options)


def convert_linear(linear: nn.Linear, method: str, rank: Optional[int] = None, *, name: Optional[str] = None, **options):
    """Return a layer of ``method`` with the same outputs as ``linear``.

    ``"full"`` and ``"galore"`` return ``linear`` itself. The other methods copy its weight and bias, so
    ``linear`` is left as it was.

    Args:
        linear: the layer to convert.
        method: one of :data:`METHODS`.
        rank: rank of the new layer, needed by ``"lora"``, ``"relora"`` and ``"sst"``.
        name: layer name used in error messages (default: ``"linear"``).
        **options: ``alpha`` for LoRA and ReLoRA*; ``gradient`` and ``vector_geometry`` for SST.

    Raises:
        TypeError: if ``linear`` is not an ``nn.Linear`` or ``rank`` is not an int.
        ValueError: if ``method`` is unknown, ``rank`` is missing or out of range, or the weight or bias
            contains NaN or Inf.
    """
    caller = "convert_linear"
    _check_method(method, caller)
    label = name or "linear"
    if not isinstance(linear, nn.Linear):
        raise TypeError(f"{caller}: layer {label!r} must be an nn.Linear, got {type(linear).__name__}")
    if method in _DENSE_METHODS:
        return linear
    if rank is None:
        raise ValueError(f"{caller}: method {method!r} needs a rank; pass rank=r with 1 <= r <= min(in, out)")
    check_rank(rank, linear.in_features, linear.out_features, f"{caller}: layer {label!r}")
    check_finite_weights(label, linear, caller)
    if method == "lora":
        return LoRALinear.from_linear(linear, rank, **options)
    if method == "relora":
        return ReLoRALinear.from_linear(linear, rank, **options)
    return _require_sst(caller).from_linear(linear, rank, name=label, **options)


@dataclass(frozen=True)
class LowRankReport:
    """Summary of the layers that :func:`apply_lowrank` replaced.

    Attributes:
        method: the method applied.
        rank: the rank requested.
        changed_modules: qualified names of the layers that were replaced.
        trainable_before: trainable scalars of the model before the conversion.
        trainable_after: trainable scalars after it.
        galore_targets: for ``"galore"``, names of the weights that GaLore projects (nothing is replaced).
    """

    method: str
    rank: Optional[int]
    changed_modules: Tuple[str, ...]
    trainable_before: int
    trainable_after: int
    galore_targets: Tuple[str, ...] = ()

    @property
    def gamma(self) -> float:
        """Trainable-parameter ratio Γ = ``trainable_after / trainable_before`` (NaN when nothing was trainable)."""
        return self.trainable_after / self.trainable_before if self.trainable_before else math.nan

    def __str__(self) -> str:
        lines = [
            f"apply_lowrank: method={self.method!r}, rank={self.rank}",
            f"  trainable parameters: {self.trainable_before:,} -> {self.trainable_after:,} "
            f"(Γ = {self.gamma:.4f})",
        ]
        if self.method == "galore":
            lines.append(f"  GaLore projects {len(self.galore_targets)} weights:")
            lines.extend(f"    {name}" for name in self.galore_targets)
        else:
            lines.append(f"  changed modules ({len(self.changed_modules)}):")
            lines.extend(f"    {name}" for name in self.changed_modules)
        return "\n".join(lines)


def _check_untied(name: str, module: nn.Module, owners, caller: str) -> None:
    holders = owners.get(id(module.weight), [])
    if len(holders) > 1:
        others = [holder for holder in holders if holder != name]
        raise ValueError(
            f"{caller}: the weight of layer {name!r} is tied to {others}; converting it would untie the "
            f"weights, so exclude {name!r} or untie them first"
        )


def apply_lowrank(
    model: nn.Module,
    method: str,
    rank: Optional[int],
    target_modules: TargetSpec = None,
    exclude: Iterable[str] = (),
    **options,
) -> LowRankReport:
    """Convert the linear layers of ``model`` in place for a training method.

    Each converted layer gives the same outputs as before (zero distortion). Every layer is checked
    before any is replaced, so an error leaves the model unchanged. A layer shared by several parents is
    replaced everywhere by one new layer.

    Args:
        model: any module; the model itself is not converted, only its submodules.
        method: ``"full"`` (no change), ``"lora"``, ``"relora"``, ``"sst"`` or ``"galore"`` (no change;
            the report lists the weights that :func:`~hypersst.lowrank.make_galore_optimizer` projects).
        rank: rank of every converted layer; ignored by ``"full"``.
        target_modules: ``None`` (default) targets every ``nn.Linear``. A sequence of strings lists name
            suffixes that match at a dot boundary, and a single string is a regular expression that must
            match a whole qualified name. A named hyperbolic layer stands for its ``.linear`` child.
        exclude: names of modules to skip, matched as suffixes at a dot boundary; everything inside an
            excluded module is skipped too (for example ``("lm_head",)``).
        **options: layer options: ``alpha`` for LoRA and ReLoRA*; ``gradient`` and ``vector_geometry``
            for SST.

    Returns:
        A :class:`LowRankReport`.

    Raises:
        ValueError: if ``method`` is unknown, ``rank`` is missing or out of range for a layer, a weight
            is not finite or is tied to another module, options are given to ``"full"`` or ``"galore"``,
            or a ``target_modules`` entry matches nothing.
        TypeError: if a module named by ``target_modules`` is not a linear layer, or ``model`` is itself
            an ``nn.Linear`` (use :func:`convert_linear`).
    """
    caller = "apply_lowrank"
    _check_method(method, caller)
    if isinstance(model, nn.Linear):
        raise TypeError(f"{caller}: the model is itself an nn.Linear and cannot be replaced in place; use convert_linear")
    if method in _DENSE_METHODS and options:
        raise ValueError(
            f"{caller}: method {method!r} replaces no layer and takes no options, got {sorted(options)}"
            + ("; pass GaLore options to make_galore_optimizer" if method == "galore" else "")
        )
    if method != "full" and rank is None:
        raise ValueError(f"{caller}: method {method!r} needs a rank; pass rank=r with r >= 1")

    before = count_trainable(model)
    if method == "full":
        return LowRankReport(method, rank, (), before, before)

    targets = find_targets(model, (nn.Linear,), target_modules, exclude, caller)
    if not targets:
        factored = [name for name, module in model.named_modules() if isinstance(module, _factored_kinds())]
        hint = (
            f"; it already holds converted layers such as {factored[0]!r}, so call merge_lowrank(model) first"
            if factored
            else ""
        )
        raise ValueError(f"{caller}: the model has no nn.Linear layer to convert with method {method!r}{hint}")
    for name, linear in targets:
        check_rank(rank, linear.in_features, linear.out_features, f"{caller}: layer {name!r}")
    if method == "galore":
        return LowRankReport(method, rank, (), before, before, tuple(f"{name}.weight" for name, _ in targets))

    owners = parameter_owners(model)
    replacements = []
    for name, linear in targets:
        _check_untied(name, linear, owners, caller)
        replacements.append((linear, convert_linear(linear, method, rank, name=name, **options)))

    occurrences = module_occurrences(model)
    for old, new in replacements:
        replace_module(occurrences, old, new)
    changed = tuple(name for name, _ in targets)
    return LowRankReport(method, rank, changed, before, count_trainable(model))


def _factored_kinds() -> Tuple[type, ...]:
    sst_linear = sst_linear_class()
    kinds = (LoRALinear, TwoFactorLinear)
    return kinds + (sst_linear,) if sst_linear is not None else kinds


def merge_lowrank(model: nn.Module) -> nn.Module:
    """Replace every LoRA, ReLoRA*, SST and two-factor linear layer of ``model`` by an equal ``nn.Linear``.

    Works in place on any module, including the ``.linear`` child of a hyperbolic layer. A
    :class:`hypersst.HyperSSTLinear` becomes the ``LorentzLinear`` or ``PoincareLinear`` it wraps, with the
    merged ``nn.Linear`` inside, since its SST views no longer apply. The outputs are unchanged up to rounding.

    Args:
        model: the module to merge.

    Returns:
        ``model``; or, when ``model`` is itself a factored layer or a ``HyperSSTLinear``, its merged
        equivalent.

    Raises:
        RuntimeError: if a merged weight contains NaN or Inf; the message names the layer and no layer
            has been replaced.
    """
    from hypersst.nn.sst import HyperSSTLinear

    kinds = _factored_kinds()
    if isinstance(model, kinds):
        return _merge_one("model", model)

    merged = []
    wrappers = []
    for name, module in model.named_modules():
        if isinstance(module, kinds):
            merged.append((module, _merge_one(name, module)))
        elif isinstance(module, HyperSSTLinear):
            wrappers.append((module, module.layer))
    # The wrappers' parents are never factored layers, so one map of the places serves both replacements.
    occurrences = module_occurrences(model)
    for old, new in merged + wrappers:
        replace_module(occurrences, old, new)
    if isinstance(model, HyperSSTLinear):
        return model.layer
    return model


def _merge_one(name: str, module: nn.Module) -> nn.Linear:
    try:
        linear = module.to_linear()
    except RuntimeError as error:
        raise RuntimeError(f"merge_lowrank: layer {name!r} cannot be merged: {error}") from error
    if not all(bool(param.isfinite().all()) for param in linear.parameters()):
        raise RuntimeError(f"merge_lowrank: layer {name!r} merges to a weight or bias with NaN or Inf")
    return linear
