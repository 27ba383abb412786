"""Atomic training checkpoints that resume a run exactly."""

from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Any, Dict, Optional, Union

import torch

from hypersst._io import atomic_open

__all__ = ["load_checkpoint", "save_checkpoint"]

PathLike = Union[str, os.PathLike]


def save_checkpoint(
    path: PathLike,
    model: torch.nn.Module,
    optimizer: Optional[torch.optim.Optimizer] = None,
    scheduler: Any = None,
    *,
    extra: Optional[Dict[str, Any]] = None,
) -> Path:
    """Write the model, optimizer and scheduler state to ``path`` atomically.

    The state is written to a temporary file in the same folder, flushed to disk and then renamed over
    ``path``, so an interrupted save leaves the previous checkpoint intact.

    Args:
        path: destination file.
        model: module whose ``state_dict`` is saved.
        optimizer: optimizer whose state is saved, if any.
        scheduler: object with ``state_dict()`` (e.g. :class:`hypersst.SSTScheduler`), if any.
        extra: further tensors or plain values (numbers, strings, lists, dicts), such as the epoch or
            the torch RNG state.

    Returns:
        The path written.
    """
    path = Path(path)
    payload = {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
        "extra": extra or {},
    }
    with atomic_open(path, "wb") as stream:
        torch.save(payload, stream)
    return path


def _restore_integer_steps(optimizer: torch.optim.Optimizer, saved: Dict[str, Any]) -> None:
    # torch's Optimizer.load_state_dict turns an integer "step" (as geoopt's RiemannianAdam keeps it)
    # into a float32 tensor, which changes Adam's bias correction in the last bits. Put the ints back so
    # that a resumed run matches the uninterrupted one exactly.
    params = [p for group in optimizer.param_groups for p in group["params"]]
    for position, entry in saved["state"].items():
        step = entry.get("step")
        if isinstance(step, int) and not isinstance(step, bool):
            optimizer.state[params[position]]["step"] = step


def load_checkpoint(
    path: PathLike,
    model: torch.nn.Module,
    optimizer: Optional[torch.optim.Optimizer] = None,
    scheduler: Any = None,
    *,
    map_location: Any = None,
    weights_only: bool = True,
) -> Dict[str, Any]:
    """Restore a checkpoint written by :func:`save_checkpoint` and return its ``extra`` values.

    Build the model, optimizer and scheduler exactly as for the original run before calling this.

    Args:
        path: checkpoint file.
        model, optimizer, scheduler: objects to restore; pass ``None`` to skip the optimizer or scheduler.
        map_location: passed to ``torch.load``.
        weights_only: load with ``torch.load(weights_only=True)``, which accepts only tensors and plain
            values. GaLore keeps a Python projector object in its optimizer state, so its checkpoints need
            ``weights_only=False``, which unpickles arbitrary objects: use it only for files you trust.

    Raises:
        FileNotFoundError: if ``path`` does not exist.
        ValueError: if an optimizer or scheduler is passed but the checkpoint contains no state for it.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {str(path)!r} not found")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=weights_only)
    except pickle.UnpicklingError as error:
        raise ValueError(
            f"checkpoint {str(path)!r} contains Python objects that weights_only=True rejects ({error}). "
            "If you wrote the file yourself (for example with a GaLore optimizer), pass weights_only=False."
        ) from error
    targets = [(label, target) for label, target in (("optimizer", optimizer), ("scheduler", scheduler)) if target is not None]
    # Check what can be checked before restoring anything, so a rejected checkpoint leaves every object unchanged.
    for label, target in targets:
        if payload[label] is None:
            raise ValueError(f"checkpoint {str(path)!r} contains no {label} state; pass {label}=None to skip it")
    if scheduler is not None and hasattr(scheduler, "check_state_dict"):
        scheduler.check_state_dict(payload["scheduler"])
    model.load_state_dict(payload["model"])
    for label, target in targets:
        target.load_state_dict(payload[label])
    if optimizer is not None:
        _restore_integer_steps(optimizer, payload["optimizer"])
    return payload["extra"]
