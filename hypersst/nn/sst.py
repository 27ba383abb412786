r"""Hyperbolic linear layers whose weight is trained by Sparse Spectral Training."""

from __future__ import annotations

import math
from typing import Callable, Optional, Union

import torch
from torch import Tensor, nn

from hypersst.manifolds import Euclidean, Lorentz, Stereographic
from hypersst.spectral import SSTLinear

from .lorentz import LorentzLinear
from .poincare import PoincareLinear

__all__ = ["HyperSSTLinear"]


class HyperSSTLinear(nn.Module):
    r"""A hyperbolic linear layer whose Euclidean map is an :class:`hypersst.SSTLinear`.

    The manifold picks the layer:

    - :class:`hypersst.manifolds.Lorentz`: a :class:`LorentzLinear`; sizes count ambient coordinates, time
      included.
    - :class:`hypersst.manifolds.Stereographic` or ``PoincareBall`` with :math:`\kappa < 0` (fixed or learnable):
      a :class:`PoincareLinear`.
    - :class:`hypersst.manifolds.Euclidean` or a fixed ``Stereographic(0.0)``: the output is exactly the inner
      ``SSTLinear``'s, ``dropout(x) W^T + b``.

    The SST factor views of the inner layer are exposed here, and :class:`hypersst.SSTScheduler` finds the inner
    layer among the model's modules.

    Args:
        in_features: input size (ambient, time included, for Lorentz).
        out_features: output size (ambient, time included, for Lorentz).
        rank: number of active singular triplets.
        manifold: the geometry, see above.
        bias: if ``True``, adds the layer's bias (default: ``True``).
        dropout: dropout probability (default: ``0.0``).
        nonlin: Lorentz only, see :class:`LorentzLinear`.
        scale_init: Lorentz only, see :class:`LorentzLinear`.
        time_offset: Lorentz only, see :class:`LorentzLinear`.
        **sst_options: passed to :class:`hypersst.SSTLinear`: ``gradient``, ``vector_geometry`` (``"euclidean"`` or
            ``"sphere"``), ``device``, ``dtype``.

    Shapes:
        - input: ``(..., in_features)``; output: ``(..., out_features)``.
        - ``U``: ``(out_features, k)``, ``S``: ``(k,)``, ``Vh``: ``(k, in_features)`` with
          ``k = min(in_features, out_features)``.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        rank: int,
        manifold: Union[Lorentz, Stereographic, Euclidean],
        bias: bool = True,
        dropout: float = 0.0,
        *,
        nonlin: Optional[Callable[[Tensor], Tensor]] = None,
        scale_init: float = math.log(10.0),
        time_offset: Optional[float] = None,
        **sst_options,
    ) -> None:
        super().__init__()
        if isinstance(manifold, Lorentz):
            self.layer = LorentzLinear(
                in_features,
                out_features,
                manifold,
                bias=bias,
                dropout=dropout,
                nonlin=nonlin,
                scale_init=scale_init,
                time_offset=time_offset,
                method="sst",
                rank=rank,
                **sst_options,
            )
        elif isinstance(manifold, (Stereographic, Euclidean)):
            unused = [
                label
                for label, value, default in (
                    ("nonlin", nonlin, None),
                    ("scale_init", scale_init, math.log(10.0)),
                    ("time_offset", time_offset, None),
                )
                if value != default
            ]
            if unused:
                raise ValueError(
                    f"HyperSSTLinear: {', '.join(unused)} only apply to a Lorentz manifold, got "
                    f"{type(manifold).__name__}; drop these arguments"
                )
            self.layer = PoincareLinear(
                in_features, out_features, manifold, bias=bias, dropout=dropout, method="sst", rank=rank, **sst_options
            )
        else:
            raise TypeError(
                "HyperSSTLinear: manifold must be a hypersst.manifolds.Lorentz, Stereographic, PoincareBall or "
                f"Euclidean, got {type(manifold).__name__}"
            )

    @classmethod
    def from_dense(cls, layer: nn.Module, rank: int, **sst_options) -> "HyperSSTLinear":
        """Convert a dense layer into an SST one with the same outputs (zero distortion).

        Args:
            layer: a :class:`LorentzLinear` or :class:`PoincareLinear` whose inner map is an ``nn.Linear``, or a
                plain ``nn.Linear`` (taken as Euclidean). Its tensors are copied; its manifold object is shared.
            rank: number of active singular triplets.
            **sst_options: ``gradient`` and ``vector_geometry`` for :class:`hypersst.SSTLinear`.

        Raises:
            TypeError: ``layer`` is of another kind or its inner map is not an ``nn.Linear``.
        """
        if isinstance(layer, nn.Linear):
            dense = PoincareLinear(layer.in_features, layer.out_features, Euclidean(), bias=layer.bias is not None)
            dense.linear = layer
            layer = dense
        if not isinstance(layer, (LorentzLinear, PoincareLinear)):
            raise TypeError(
                "HyperSSTLinear.from_dense: expected a LorentzLinear, PoincareLinear or nn.Linear, got "
                f"{type(layer).__name__}"
            )
        if not isinstance(layer.linear, nn.Linear):
            raise TypeError(
                "HyperSSTLinear.from_dense: the layer's inner map must be a dense nn.Linear (method='full'), got "
                f"{type(layer.linear).__name__}"
            )
        reference = layer.linear.weight
        factory = {"device": reference.device, "dtype": reference.dtype}
        kwargs = {}
        if isinstance(layer, LorentzLinear):
            kwargs = {"nonlin": layer.nonlin, "scale_init": layer.scale_init, "time_offset": layer.time_offset}
        has_bias = layer.linear.bias is not None or getattr(layer, "bias", None) is not None
        new = cls(
            layer.in_features,
            layer.out_features,
            rank,
            layer.manifold,
            bias=has_bias,
            dropout=layer.dropout.p,
            **kwargs,
            **factory,
            **sst_options,
        )
        new.layer.linear = SSTLinear.from_linear(layer.linear, rank, name="HyperSSTLinear.from_dense", **sst_options)
        with torch.no_grad():
            if isinstance(layer, LorentzLinear):
                new.layer.scale.copy_(layer.scale)
            elif layer.bias is not None:
                new.layer.bias.copy_(layer.bias)
        return new

    # ------------------------------------------------------------------ views of the inner SST layer
    @property
    def linear(self) -> SSTLinear:
        """The inner :class:`hypersst.SSTLinear`."""
        return self.layer.linear

    @property
    def manifold(self):
        """The layer's manifold."""
        return self.layer.manifold

    @property
    def in_features(self) -> int:
        return self.layer.in_features

    @property
    def out_features(self) -> int:
        return self.layer.out_features

    @property
    def rank(self) -> int:
        return self.linear.rank

    @property
    def U(self) -> Tensor:
        """Left singular vectors of the inner weight, ``(out_features, k)``."""
        return self.linear.U

    @property
    def S(self) -> Tensor:
        """Singular values of the inner weight, ``(k,)`` (the trainable parameter)."""
        return self.linear.S

    @property
    def Vh(self) -> Tensor:
        """Right singular vectors of the inner weight, ``(k, in_features)``."""
        return self.linear.Vh

    @property
    def weight(self) -> Tensor:
        """Dense inner weight ``U diag(S) Vh``, ``(out_features, in_features)``."""
        return self.linear.weight

    @property
    def active_indices(self) -> Tensor:
        """Indices of the active triplets, a LongTensor of length ``rank``."""
        return self.linear.active_indices

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() == 0 or x.shape[-1] != self.in_features:
            ambient = " (ambient coordinates, time included)" if isinstance(self.manifold, Lorentz) else ""
            raise ValueError(
                f"HyperSSTLinear: expected inputs with last dimension {self.in_features}{ambient}, got shape "
                f"{tuple(x.shape)}"
            )
        return self.layer(x)
