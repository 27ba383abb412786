"""A compact linear layer that stores its weight as the product of two thin factors."""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from hypersst._validation import linear_from_weight
from hypersst.lowrank.lora import wide_dtype

__all__ = ["TwoFactorLinear"]


class TwoFactorLinear(nn.Module):
    r"""Linear layer with weight ``left @ right`` of rank at most ``rank``.

    .. math::
        y = (x\, \mathrm{right}^\top)\, \mathrm{left}^\top + b

    A layer of rank ``r`` stores ``r * (in_features + out_features)`` weight entries and costs that
    many multiply-adds per input row, against ``in_features * out_features`` for ``nn.Linear``.
    :func:`~hypersst.lowrank.prune_singular_values` builds these layers from truncated SVDs. Both
    factors and the bias are trainable parameters.

    Args:
        in_features: size of each input sample.
        out_features: size of each output sample.
        rank: inner dimension ``r`` of the factors (at least 1).
        bias: if ``True`` (default), adds a bias.
        device: device of the new tensors.
        dtype: dtype of the new tensors.

    Shapes:
        - input: ``(..., in_features)``; output: ``(..., out_features)``
        - ``left``: ``(out_features, r)``, ``right``: ``(r, in_features)``
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        rank: int,
        bias: bool = True,
        *,
        device=None,
        dtype=None,
    ) -> None:
        super().__init__()
        for label, value in (("in_features", in_features), ("out_features", out_features), ("rank", rank)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"TwoFactorLinear: {label} must be a positive int, got {value!r}")
        factory = {"device": device, "dtype": dtype}
        self.in_features = in_features
        self.out_features = out_features
        self.rank = rank
        self.left = nn.Parameter(torch.zeros(out_features, rank, **factory))
        self.right = nn.Parameter(torch.zeros(rank, in_features, **factory))
        if bias:
            self.bias = nn.Parameter(torch.zeros(out_features, **factory))
        else:
            self.register_parameter("bias", None)

    @classmethod
    def from_factors(cls, left: Tensor, right: Tensor, bias: Optional[Tensor] = None) -> "TwoFactorLinear":
        """Build a layer from copies of ``left`` ``(out, r)``, ``right`` ``(r, in)`` and ``bias`` ``(out,)``.

        Raises:
            ValueError: if the shapes do not fit together.
        """
        if left.dim() != 2 or right.dim() != 2 or left.shape[1] != right.shape[0]:
            raise ValueError(
                f"TwoFactorLinear.from_factors: expected left (out, r) and right (r, in), got shapes "
                f"{tuple(left.shape)} and {tuple(right.shape)}"
            )
        if bias is not None and bias.shape != (left.shape[0],):
            raise ValueError(
                f"TwoFactorLinear.from_factors: bias must have shape ({left.shape[0]},), got {tuple(bias.shape)}"
            )
        layer = cls(
            right.shape[1],
            left.shape[0],
            left.shape[1],
            bias=bias is not None,
            device=left.device,
            dtype=left.dtype,
        )
        with torch.no_grad():
            layer.left.copy_(left)
            layer.right.copy_(right)
            if bias is not None:
                layer.bias.copy_(bias)
        return layer

    @property
    def weight(self) -> Tensor:
        """Dense weight ``left @ right``, ``(out_features, in_features)``, differentiable."""
        wide = wide_dtype(self.left.dtype)
        return (self.left.to(wide) @ self.right.to(wide)).to(self.left.dtype)

    def forward(self, x: Tensor) -> Tensor:
        return F.linear(F.linear(x, self.right), self.left, self.bias)

    def to_linear(self) -> nn.Linear:
        """Return a plain ``nn.Linear`` with weight ``left @ right`` and a copy of the bias.

        Raises:
            RuntimeError: if the product contains NaN or Inf.
        """
        weight = self.weight.detach()
        if not torch.isfinite(weight).all():
            raise RuntimeError(
                f"TwoFactorLinear({self.extra_repr()}): the product left @ right contains NaN or Inf"
            )
        return linear_from_weight(weight, self.bias.detach() if self.bias is not None else None)

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, rank={self.rank}, "
            f"bias={self.bias is not None}"
        )
