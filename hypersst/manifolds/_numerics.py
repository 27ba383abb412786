"""Dtype-aware numerical helpers shared by the geometry code.

Every tolerance here is derived from ``torch.finfo`` of the tensor being processed, so that the same code is
accurate in float64 and safe in float32, float16 and bfloat16.
"""

from __future__ import annotations

import math
import numbers

import numpy as np
import torch
from torch import Tensor, nn

__all__ = [
    "Float64Curvature",
    "as_curvature",
    "asinhc",
    "check_real_number",
    "eps",
    "inverse_softplus",
    "safe_norm",
    "sinhc",
    "stable_acosh",
    "stable_asinh",
    "tiny",
    "type_label",
]


def eps(dtype: torch.dtype) -> float:
    """Machine epsilon of a floating dtype."""
    return torch.finfo(dtype).eps


def tiny(dtype: torch.dtype) -> float:
    """Smallest positive normal number of a floating dtype."""
    return torch.finfo(dtype).tiny


def as_curvature(k: Tensor, like: Tensor) -> Tensor:
    """Cast a curvature tensor to the dtype and device of ``like``.

    geoopt stores curvature as a tensor of its own dtype. Mixed with inputs of another dtype, it would either
    round away the input's precision (float64 input, float32 curvature) or promote a float32 model's outputs to
    float64, so the geometry code works in the input's dtype.
    """
    return k.to(dtype=like.dtype, device=like.device)


class Float64Curvature(nn.Module):
    """Module base that keeps the curvature tensors ``raw_k`` and ``k_value`` in float64.

    ``model.float()``, ``model.half()`` and ``model.to(dtype)`` cast every floating parameter and buffer. For the
    curvature that would round the stored value for good: after ``.float().double()``, ``k = 0.1`` would read
    0.10000000149. The operations cast the curvature to their input's dtype anyway, so it stays float64 here
    and only follows device moves.
    """

    def _apply(self, fn, *args, **kwargs):
        saved = {}
        for name in ("raw_k", "k_value"):
            tensor = getattr(self, name, None)
            if isinstance(tensor, Tensor) and tensor.dtype == torch.float64:
                grad = tensor.grad.detach().clone() if tensor.grad is not None else None
                saved[name] = (tensor.detach().clone(), grad)
        result = super()._apply(fn, *args, **kwargs)
        for name, (value, grad) in saved.items():
            tensor = getattr(self, name)
            if tensor.dtype == torch.float64:
                continue
            if name in self._buffers:
                self._buffers[name] = value.to(device=tensor.device)
                continue
            tensor.data = value.to(device=tensor.device)
            # The cast rounded the gradient as well, and optimizers expect it exact and in the parameter's dtype.
            tensor.grad = grad.to(device=tensor.device) if grad is not None else None
        return result


def type_label(value) -> str:
    """Name the type of ``value`` for error messages, with its module unless it is a built-in type."""
    kind = type(value)
    return kind.__name__ if kind.__module__ == "builtins" else f"{kind.__module__}.{kind.__name__}"


def check_real_number(value, name: str, owner: str) -> float:
    """Return ``value`` as a finite Python float or raise.

    A tensor or numpy array with one element counts as its element.

    Raises:
        TypeError: ``value`` is a bool, a tensor or array of another size or of bools, or not a number.
        ValueError: ``value`` is NaN or infinite.
    """
    if isinstance(value, bool):
        raise TypeError(f"{owner}: {name} must be a real number, got the bool {value!r}")
    kind = "a numpy array" if isinstance(value, np.ndarray) else "a tensor"
    if isinstance(value, np.ndarray):
        value = torch.from_numpy(np.array(value, copy=True))
    if isinstance(value, Tensor):
        if value.numel() != 1:
            raise TypeError(f"{owner}: {name} must be a scalar, got {kind} of shape {tuple(value.shape)}")
        if value.dtype == torch.bool:
            raise TypeError(f"{owner}: {name} must be a real number, got {kind} of bools")
        value = value.item()
    if not isinstance(value, numbers.Real):
        raise TypeError(f"{owner}: {name} must be a real number, got {type_label(value)}")
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
    # An all-zero vector has scale 0. Dividing it by 1 instead leaves it zero and avoids 0/0.
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
    r_small = torch.where(small, r, torch.zeros_like(r))
    return torch.where(small, 1.0 + r_small * r_small / 6.0, torch.sinh(r_safe) / r_safe)


def asinhc(r: Tensor) -> Tensor:
    """``asinh(r) / r`` with the removable singularity at ``r = 0`` filled in (value 1, finite gradient)."""
    small = r.abs() < _series_threshold(r.dtype)
    r_safe = torch.where(small, torch.ones_like(r), r)
    # the series branch sees 0 instead of large r, so its unused value and gradient stay finite
    r2 = torch.where(small, r, torch.zeros_like(r)).pow(2)
    return torch.where(small, 1.0 - r2 / 6.0 + 0.075 * r2 * r2, stable_asinh(r_safe) / r_safe)


def _large(dtype: torch.dtype) -> float:
    # Above 1/sqrt(eps), asinh(x) = log(2x) + 1/(4x^2) - ... and acosh(x) = log(2x) - 1/(4x^2) - ... equal
    # log(2x) to rounding. torch's own backward, 1/sqrt(x^2 + 1), overflows x^2 to inf above 1.8e19 in float32
    # and returns a zero gradient; the log form's gradient 1/x does not.
    return eps(dtype) ** -0.5


def stable_asinh(x: Tensor) -> Tensor:
    """``asinh(x)`` with a gradient that stays accurate for huge ``|x|``."""
    large = x.abs() > _large(x.dtype)
    x_large = torch.where(large, x.abs(), torch.ones_like(x))
    x_small = torch.where(large, torch.zeros_like(x), x)
    return torch.where(large, torch.sign(x) * (torch.log(x_large) + math.log(2.0)), torch.asinh(x_small))


def stable_acosh(x: Tensor) -> Tensor:
    """``acosh(x)`` for ``x >= 1`` with a gradient that stays accurate for huge ``x``."""
    large = x > _large(x.dtype)
    x_large = torch.where(large, x, torch.ones_like(x))
    x_small = torch.where(large, 2.0 * torch.ones_like(x), x)
    return torch.where(large, torch.log(x_large) + math.log(2.0), torch.acosh(x_small))


def inverse_softplus(y: float) -> float:
    """The ``x`` with ``softplus(x) = log(1 + exp(x)) = y``, for ``y > 0``."""
    # log(expm1(y)) overflows for large y; y + log(-expm1(-y)) is the same value and stays finite.
    return y + math.log(-math.expm1(-y))
