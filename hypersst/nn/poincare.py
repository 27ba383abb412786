r"""Möbius linear layer on the Poincaré ball (stereographic model), exact Euclidean linear map at zero curvature."""

from __future__ import annotations

from typing import Optional, Union

import torch
from torch import Tensor, nn

from hypersst.manifolds import Euclidean, Stereographic

from ._linear import build_linear, check_dropout, check_features

__all__ = ["PoincareLinear"]


class PoincareLinear(nn.Module):
    r"""Möbius matrix-vector product plus Möbius bias (Ganea et al., NeurIPS 2018, arXiv 1805.09112).

    .. math::
        y = \exp_0\!\big(W\,\mathrm{dropout}(\log_0 x)\big) \oplus_\kappa \exp_0(b)

    :math:`\exp_0(W \log_0 x)` is the Möbius matrix-vector product :math:`W \otimes_\kappa x`, and the bias
    :math:`b` is a tangent vector at the origin. Dropout acts in the tangent space, where it cannot push a point
    out of the ball. The operations are geoopt's stereographic ones, which are continuous as
    :math:`\kappa \to 0^-`. For a fixed :math:`\kappa = 0` (``Stereographic(0.0)``) or ``Euclidean()`` the layer
    is exactly the inner linear map, ``y = dropout(x) W^T + b``, with the bias held by the inner map.

    Args:
        in_features: size of each input point.
        out_features: size of each output point.
        manifold: a :class:`hypersst.manifolds.Stereographic` (or ``PoincareBall``) with :math:`\kappa \le 0`,
            or :class:`hypersst.manifolds.Euclidean`.
        bias: if ``True``, adds the Möbius bias (default: ``True``). It starts at zero.
        dropout: dropout probability in the tangent space at the origin (default: ``0.0``).
        method: training method of the inner linear map: ``"full"``, ``"lora"``, ``"relora"`` or ``"sst"``.
        rank: rank for the low-rank methods.
        **linear_options: passed to ``hypersst.lowrank.make_linear``.

    Shapes:
        - input: ``(..., in_features)`` points of the ball; output: ``(..., out_features)``.

    Notes:
        Outputs pass through geoopt's projection, which keeps them a small margin inside the boundary
        (relative margin 4e-3 in float32, 1e-5 in float64). Points that far out are already at distance
        about ``6 / sqrt(|kappa|)`` from the origin in float32, and ``12 / sqrt(|kappa|)`` in float64, where the
        dtype cannot resolve the ball any further: points beyond collapse onto that sphere.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        manifold: Union[Stereographic, Euclidean],
        bias: bool = True,
        dropout: float = 0.0,
        method: str = "full",
        rank: Optional[int] = None,
        **linear_options,
    ) -> None:
        super().__init__()
        name = type(self).__name__
        self.in_features = check_features(in_features, "in_features", name)
        self.out_features = check_features(out_features, "out_features", name)
        if not isinstance(manifold, (Stereographic, Euclidean)):
            raise TypeError(
                f"{name}: manifold must be a hypersst.manifolds.Stereographic, PoincareBall or Euclidean, got "
                f"{type(manifold).__name__}; use LorentzLinear for Lorentz manifolds"
            )
        self.manifold = manifold
        self.flat = isinstance(manifold, Euclidean) or manifold.is_flat
        self.method = method
        self.dropout = nn.Dropout(check_dropout(dropout, name))
        # At zero curvature the Möbius bias is the ordinary bias, so the inner map contains it and the layer is the
        # inner map itself. Otherwise the bias is a tangent vector at the origin, applied by Möbius addition.
        self.linear = build_linear(
            in_features, out_features, bias=bias and self.flat, method=method, rank=rank, **linear_options
        )
        if bias and not self.flat:
            reference = next(self.linear.parameters())
            self.bias = nn.Parameter(torch.zeros(out_features, dtype=reference.dtype, device=reference.device))
        else:
            self.register_parameter("bias", None)

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs):
        # A flat layer computes the Euclidean map whatever curvature its manifold has, so it must reject a curved state.
        if self.flat:
            learnable = prefix + "manifold.raw_k" in state_dict
            value = state_dict.get(prefix + "manifold.k_value")
            if learnable or (value is not None and float(value) != 0.0):
                loaded = "a learnable curvature" if learnable else f"curvature kappa = {float(value):g}"
                error_msgs.append(
                    f"{type(self).__name__} at '{prefix}': the state has {loaded}, but this layer was built at kappa = 0 "
                    "and always computes the Euclidean map; build the layer with the state's manifold, e.g. "
                    "Stereographic(kappa), before loading it"
                )
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs)

    def reset_parameters(self) -> None:
        """Re-initialize the inner linear map and set the Möbius bias to zero."""
        self.linear.reset_parameters()
        if self.bias is not None:
            with torch.no_grad():
                self.bias.zero_()

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() == 0 or x.shape[-1] != self.in_features:
            raise ValueError(
                f"{type(self).__name__}: expected inputs with last dimension {self.in_features}, got shape "
                f"{tuple(x.shape)}"
            )
        if self.flat:
            return self.linear(self.dropout(x))
        tangent = self.linear(self.dropout(self.manifold.logmap0(x)))
        y = self.manifold.expmap0(tangent)
        if self.bias is not None:
            y = self.manifold.mobius_add(y, self.manifold.expmap0(self.bias.to(y.dtype)))
        return y

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, method={self.method!r}"
