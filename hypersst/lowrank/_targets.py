"""Selection and in-place replacement of the submodules that the conversion functions act on."""

from __future__ import annotations

import re
from typing import Dict, Iterable, List, Optional, Sequence, Tuple, Type, Union

import torch
from torch import nn

TargetSpec = Union[None, str, Sequence[str]]


def sst_linear_class() -> Optional[type]:
    """Return ``hypersst.spectral.SSTLinear``, or ``None`` while that subpackage is not installed."""
    # Imported lazily: hypersst.spectral may import hypersst.lowrank, so a top-level import could cycle.
    try:
        from hypersst.spectral import SSTLinear
    except ModuleNotFoundError as error:
        if error.name is not None and error.name.startswith("hypersst.spectral"):
            return None
        raise
    return SSTLinear


def _normalize_names(names, argument: str, caller: str) -> Tuple[str, ...]:
    if isinstance(names, str):
        return (names,)
    names = tuple(names)
    for entry in names:
        if not isinstance(entry, str) or not entry:
            raise TypeError(f"{caller}: {argument} must contain non-empty module names, got {entry!r}")
    return names


def _matches_suffix(name: str, suffix: str) -> bool:
    return name == suffix or name.endswith("." + suffix)


def _is_excluded(name: str, exclude: Tuple[str, ...]) -> bool:
    # A module is excluded when it or one of its ancestors matches an entry, so excluding "encoder"
    # also excludes "encoder.layer.0.proj".
    parts = name.split(".")
    prefixes = [".".join(parts[: i + 1]) for i in range(len(parts))]
    return any(_matches_suffix(prefix, entry) for prefix in prefixes for entry in exclude)


def find_targets(
    model: nn.Module,
    kinds: Tuple[Type[nn.Module], ...],
    target_modules: TargetSpec,
    exclude: Iterable[str],
    caller: str,
) -> List[Tuple[str, nn.Module]]:
    """Return ``(name, module)`` pairs of the submodules of ``model`` to act on, in model order.

    With ``target_modules=None`` every submodule that is an instance of ``kinds`` is chosen. A string is
    a regular expression that must match a module's whole qualified name (``re.fullmatch``). A sequence
    of strings lists name suffixes that match at a dot boundary (``"proj"`` matches ``"attn.proj"``
    but not ``"attn.out_proj"``). A chosen module that is not of ``kinds`` but has a child ``.linear``
    of ``kinds`` (the hyperbolic layers of :mod:`hypersst.nn`) stands for that child. Modules in
    ``exclude``, or inside one, are skipped. The model itself is never chosen.

    Linear layers directly inside ``nn.MultiheadAttention`` are skipped by default and rejected when
    named, because that module reads ``out_proj.weight`` directly instead of calling the layer.

    Raises:
        TypeError: if a named module is of another kind, or an argument has the wrong type.
        ValueError: if the regular expression is invalid, or a listed suffix of ``target_modules`` or
            ``exclude`` matches no module.
    """
    exclude = _normalize_names(exclude, "exclude", caller)
    pattern = None
    suffixes: Tuple[str, ...] = ()
    if isinstance(target_modules, str):
        try:
            pattern = re.compile(target_modules)
        except re.error as error:
            raise ValueError(f"{caller}: target_modules {target_modules!r} is not a valid regular expression: {error}")
    elif target_modules is not None:
        suffixes = _normalize_names(target_modules, "target_modules", caller)
        if not suffixes:
            raise ValueError(f"{caller}: target_modules is empty; pass None to target every linear layer")

    modules = dict(model.named_modules())
    unused_excludes = [entry for entry in exclude if not any(_matches_suffix(name, entry) for name in modules if name)]
    if unused_excludes:
        raise ValueError(
            f"{caller}: exclude entries {sorted(unused_excludes)} match no module of the model, so nothing "
            f"would be excluded; check the names against model.named_modules()"
        )
    accepted = ", ".join(kind.__name__ for kind in kinds)
    unmatched = set(suffixes)
    chosen: List[Tuple[str, nn.Module]] = []
    seen = set()

    for name, module in modules.items():
        if not name:
            continue
        parent = modules[name.rpartition(".")[0]]
        if target_modules is None:
            if isinstance(module, kinds) and not isinstance(parent, nn.MultiheadAttention):
                if not _is_excluded(name, exclude):
                    chosen.append((name, module))
            continue

        if pattern is not None:
            matched = pattern.fullmatch(name) is not None
        else:
            # A suffix that names only excluded modules still counts as found, so it raises no error.
            hits = {suffix for suffix in suffixes if _matches_suffix(name, suffix)}
            unmatched -= hits
            matched = bool(hits)
        if not matched or _is_excluded(name, exclude):
            continue

        if isinstance(parent, nn.MultiheadAttention):
            raise TypeError(
                f"{caller}: module {name!r} belongs to nn.MultiheadAttention, which reads its weight "
                f"directly instead of calling it, so it cannot be converted; exclude it"
            )
        inner = getattr(module, "linear", None)
        if isinstance(module, kinds):
            chosen.append((name, module))
        elif isinstance(inner, nn.Module) and isinstance(inner, kinds):
            if not _is_excluded(name + ".linear", exclude):
                chosen.append((name + ".linear", inner))
        else:
            raise TypeError(
                f"{caller}: module {name!r} matches target_modules but its type is {type(module).__name__}; "
                f"supported types are {accepted} (or a layer whose .linear child is one); "
                f"narrow target_modules or add the name to exclude"
            )

    if unmatched:
        raise ValueError(
            f"{caller}: target_modules entries {sorted(unmatched)} match no module of the model; "
            f"check the names against model.named_modules()"
        )

    result = []
    for name, module in chosen:
        if id(module) not in seen:
            seen.add(id(module))
            result.append((name, module))
    return result


def module_occurrences(model: nn.Module) -> Dict[int, List[Tuple[nn.Module, str]]]:
    """Map ``id(module)`` to every ``(parent, attribute)`` that contains it, shared modules included."""
    occurrences: Dict[int, List[Tuple[nn.Module, str]]] = {}
    for parent in model.modules():
        # _modules, unlike named_children(), lists a child once per attribute that refers to it.
        for attribute, child in parent._modules.items():
            if child is None:
                continue
            occurrences.setdefault(id(child), []).append((parent, attribute))
    return occurrences


def replace_module(occurrences: Dict[int, List[Tuple[nn.Module, str]]], old: nn.Module, new: nn.Module) -> None:
    """Put ``new`` in every place of the model that held ``old``."""
    for parent, attribute in occurrences.get(id(old), []):
        setattr(parent, attribute, new)


def parameter_owners(model: nn.Module) -> Dict[int, List[str]]:
    """Map ``id(parameter)`` to the names of the distinct modules that register it directly."""
    owners: Dict[int, Dict[int, str]] = {}
    for name, module in model.named_modules(remove_duplicate=False):
        for param in module._parameters.values():
            if param is not None:
                owners.setdefault(id(param), {}).setdefault(id(module), name)
    return {key: list(names.values()) for key, names in owners.items()}


def count_trainable(model: nn.Module) -> int:
    """Return the number of trainable scalars, counting each shared parameter once."""
    return sum(param.numel() for param in model.parameters() if param.requires_grad)


def check_finite_weights(name: str, module: nn.Module, caller: str) -> None:
    """Raise ``ValueError`` naming the layer if its weight or bias contains NaN or Inf."""
    for label in ("weight", "bias"):
        tensor = getattr(module, label, None)
        if isinstance(tensor, torch.Tensor) and not torch.isfinite(tensor).all():
            raise ValueError(
                f"{caller}: layer {name!r} has a {label} with NaN or Inf values; repair or exclude the layer "
                f"before converting it"
            )
