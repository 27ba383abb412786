"""Zero the optimizer state of one parameter, whole or in slices, in place."""

from __future__ import annotations

from typing import Iterable, Optional, Sequence, Union

import torch
from torch import Tensor

__all__ = ["MOMENT_KEYS", "reset_optimizer_state"]

#: Per-parameter state entries that hold running moments with the parameter's shape: ``exp_avg``,
#: ``exp_avg_sq`` and ``max_exp_avg_sq`` (torch Adam/AdamW and geoopt RiemannianAdam) and
#: ``momentum_buffer`` (torch SGD and geoopt RiemannianSGD).
MOMENT_KEYS = ("exp_avg", "exp_avg_sq", "max_exp_avg_sq", "momentum_buffer")

IndexLike = Union[Tensor, Sequence[int], range]


def _holds_parameter(optimizer: torch.optim.Optimizer, param: Tensor) -> bool:
    return any(p is param for group in optimizer.param_groups for p in group["params"])


def _as_index(index: IndexLike, size: int, dim: int, device: torch.device) -> Tensor:
    index = torch.as_tensor(index, device=device)
    if index.dtype == torch.bool:
        if index.shape != (size,):
            raise ValueError(
                f"reset_optimizer_state: a boolean index must have shape ({size},) to match dim={dim}, "
                f"got {tuple(index.shape)}"
            )
        return index.nonzero().flatten()
    if index.is_floating_point() or index.is_complex() or index.dim() > 1:
        raise ValueError(
            f"reset_optimizer_state: index must be a 1-D integer or boolean tensor or a sequence of ints, "
            f"got dtype {index.dtype} with shape {tuple(index.shape)}"
        )
    index = index.flatten().long()
    if index.numel() and (index.min() < -size or index.max() >= size):
        raise ValueError(
            f"reset_optimizer_state: index values must lie in [-{size}, {size}) for dim={dim} of size {size}, "
            f"got min {int(index.min())} and max {int(index.max())}"
        )
    # index_fill_ takes only non-negative positions, so wrap negative ones as Python indexing does.
    return torch.where(index < 0, index + size, index)


def reset_optimizer_state(
    optimizer: torch.optim.Optimizer,
    param: Tensor,
    index: Optional[IndexLike] = None,
    dim: int = 0,
    *,
    keys: Iterable[str] = MOMENT_KEYS,
    reset_step: bool = False,
) -> None:
    """Zero the moment buffers that ``optimizer`` keeps for ``param``, in place.

    The buffers stay the same tensor objects, so anything that refers to them (fused or foreach kernels,
    checkpoints taken with ``optimizer.state_dict()``) keeps working. A parameter that has no state yet
    (the optimizer has not stepped it) is left alone, and no state is created for it.

    Step counters are left alone unless ``reset_step=True`` (only allowed with ``index=None``), because
    one counter serves the whole tensor. With zeroed moments and an old step count, Adam's bias
    correction is close to 1, so the first updates after a reset are larger than Adam's usual first
    step. A learning-rate warm-up after each reset, as :class:`hypersst.SSTScheduler` applies, damps the
    first of them; ``SSTConfig(state_reset="restart")`` resets the counters as well.

    Works for ``torch.optim.Adam``, ``AdamW``, ``SGD`` (with momentum) and geoopt's ``RiemannianAdam`` and
    ``RiemannianSGD``; pass ``keys`` for other optimizers.

    Args:
        optimizer: the optimizer whose param groups contain ``param``.
        param: the parameter whose state is reset.
        index: ``None`` (default) to reset the whole state; otherwise the positions along ``dim`` to reset,
            as a 1-D integer tensor, a boolean mask of length ``param.shape[dim]`` or a sequence of ints.
        dim: the dimension that ``index`` selects along (default: 0).
        keys: state entries to zero (default: :data:`MOMENT_KEYS`). Entries that are absent or ``None``
            are skipped.
        reset_step: also set the step counter ``state["step"]`` to zero (default: ``False``).

    Raises:
        ValueError: if ``param`` is in no param group of ``optimizer``, if ``dim`` or ``index`` is out of
            range, if a state entry's shape differs from ``param``'s while ``index`` is given, or if
            ``reset_step`` is combined with ``index``.
        TypeError: if ``optimizer`` is not a ``torch.optim.Optimizer`` or a state entry named in ``keys``
            is not a tensor.
    """
    if not isinstance(optimizer, torch.optim.Optimizer):
        raise TypeError(
            f"reset_optimizer_state: expected a torch.optim.Optimizer, got {type(optimizer).__name__}"
        )
    if not _holds_parameter(optimizer, param):
        raise ValueError(
            f"reset_optimizer_state: the parameter of shape {tuple(param.shape)} is in no param group of "
            f"the optimizer; build the optimizer after converting the model (apply_lowrank) so that it "
            f"holds the new parameters"
        )
    if reset_step and index is not None:
        raise ValueError(
            "reset_optimizer_state: reset_step=True needs index=None, because one step counter serves "
            "the whole tensor"
        )
    if index is not None:
        if not -param.dim() <= dim < param.dim():
            raise ValueError(
                f"reset_optimizer_state: dim={dim} is out of range for a parameter with {param.dim()} "
                f"dimensions"
            )
        dim = dim % param.dim()
        index = _as_index(index, param.shape[dim], dim, param.device)

    # Looking the parameter up with `in` first avoids creating an empty entry in the defaultdict.
    if param not in optimizer.state:
        return
    state = optimizer.state[param]

    with torch.no_grad():
        for key in keys:
            buffer = state.get(key)
            if buffer is None:
                continue
            if not isinstance(buffer, Tensor):
                raise TypeError(
                    f"reset_optimizer_state: state entry {key!r} is a {type(buffer).__name__}, not a tensor"
                )
            if index is None:
                buffer.zero_()
                continue
            if buffer.shape != param.shape:
                raise ValueError(
                    f"reset_optimizer_state: state entry {key!r} has shape {tuple(buffer.shape)} but the "
                    f"parameter has shape {tuple(param.shape)}, so slices along dim={dim} cannot be matched; "
                    f"reset the whole state with index=None"
                )
            buffer.index_fill_(dim, index.to(buffer.device), 0)

        if reset_step and "step" in state:
            if isinstance(state["step"], Tensor):
                state["step"].zero_()
            else:
                state["step"] = type(state["step"])(0)
