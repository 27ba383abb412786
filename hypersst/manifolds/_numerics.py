"""Dtype-aware numerical helpers shared by the geometry code.

Every tolerance here is derived from ``torch.finfo`` of the tensor being processed, so that the same code is
accurate in float64 and safe in float32, float16 and bfloat16.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = [
    "as_curvature",
    "asinhc",
    "check_real_number",
    "eps",
    "inverse_softplus",
    "safe_norm",
    "sinhc",
    "tiny",
]


def eps(dtype: torch.dtype) -> float:
    """Machine epsilon of a floating dtype."""
    return torch.finfo(dtype).eps


def tiny(dtype: torch.dtype) -> float:
    """Smallest positive normal number of a floating dtype."""
    return torch.finfo(dtype).tiny


def as_curvature(k: Tensor, like: Tensor) -> Tensor:
    """Cast a curvature tensor to the dtype and device of ``like``.

    geoopt stores curvature as a tensor of its own dtype; mixing it with inputs of another dtype would either
    round the input's precision away (float64 input, float32 curvature) or promote a float32 model's outputs to
    float64. The geometry code therefore always works in the input's dtype.
    """
    return k.to(dtype=like.dtype, device=like.device)


def check_real_number(value, name: str, owner: str) -> float:
    """Return ``value`` as a finite Python float or raise.

    Raises:
        TypeError: ``value`` is a bool, a non-scalar tensor or not a number.
        ValueError: ``value`` is NaN or infinite.
    """
    if isinstance(value, bool):
        raise TypeError(f"{owner}: {name} must be a real number, got the bool {value!r}")
    if isinstance(value, Tensor):
        if value.numel() != 1:
            raise TypeError(f"{owner}: {name} must be a scalar, got a tensor of shape {tuple(value.shape)}")
        value = value.item()
    if not isinstance(value, (int, float)):
        raise TypeError(f"{owner}: {name} must be a real number, got {type(value).__name__}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{owner}: {name} must be finite, got {value!r}")
    return value


def safe_norm(x: Tensor, *, dim: int = -1, keepdim: bool = False) -> Tensor:
    """Euclidean norm that neither overflows nor underflows.

    ``torch.linalg.vector_norm`` squares the entries, so in float32 it returns ``inf`` once a norm exceeds about
    1.8e19. Dividing by the largest magnitude first keeps every squared entry in ``[0, 1]``. The scale is
    detached: the norm is homogeneous of degree one, so ``m * ||x / m||`` has the same gradient as ``||x||`` for
    any constant ``m > 0``. At ``x = 0`` the gradient is zero, as for ``torch.linalg.vector_norm``.
    """
    scale = x.detach().abs().amax(dim=dim, keepdim=True)
    # An all-zero vector has scale 0; dividing by 1 instead leaves it zero and avoids 0/0.
    scale = torch.where(scale > 0, scale, torch.ones_like(scale))
    norm = scale * torch.linalg.vector_norm(x / scale, dim=dim, keepdim=True)
    return norm if keepdim else norm.squeeze(dim)


def _series_threshold(dtype: torch.dtype) -> float:
    # Below this argument the two-term Taylor series of sinh(r)/r and asinh(r)/r is exact to rounding: the first
    # omitted term is r**4/120 (resp. 3 r**4/40 for asinh, whose next term is -5 r**6/112), below eps.
    return (eps(dtype) * 10.0) ** 0.25


def sinhc(r: Tensor) -> Tensor:
    """``sinh(r) / r`` with the removable singularity at ``r = 0`` filled in (value 1, finite gradient)."""
    small = r.abs() < _series_threshold(r.dtype)
    # The where-trick: the unused branch never sees r = 0, so neither branch produces 0/0 or an infinite gradient.
    r_safe = torch.where(small, torch.ones_like(r), r)
    return torch.where(small, 1.0 + r * r / 6.0, torch.sinh(r_safe) / r_safe)


def asinhc(r: Tensor) -> Tensor:
    """``asinh(r) / r`` with the removable singularity at ``r = 0`` filled in (value 1, finite gradient)."""
    small = r.abs() < _series_threshold(r.dtype)
    r_safe = torch.where(small, torch.ones_like(r), r)
    r2 = r * r
    return torch.where(small, 1.0 - r2 / 6.0 + 0.075 * r2 * r2, torch.asinh(r_safe) / r_safe)


def inverse_softplus(y: float) -> float:
    """The ``x`` with ``softplus(x) = log(1 + exp(x)) = y``, for ``y > 0``."""
    # log(expm1(y)) overflows for large y; y + log(-expm1(-y)) is the same value and stays finite.
    return y + math.log(-math.expm1(-y))
