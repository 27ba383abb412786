r"""HyboNet's Lorentz linear layer, generalized to every curvature ``k`` and every training method."""

from __future__ import annotations

import math
from typing import Callable, Optional

import torch
from torch import Tensor, nn

from hypersst._validation import check_sparse_matrix
from hypersst.manifolds import Lorentz
from hypersst.manifolds._numerics import as_curvature, check_real_number, eps, safe_norm

from ._linear import build_linear, check_dropout, check_features, load_dense_

__all__ = ["LorentzLinear", "lorentz_output"]

#: Default ratio ``c_k / sqrt(k)`` of the time offset; at ``k = 1`` it is HyboNet's constant 1.1.
TIME_OFFSET_RATIO = 1.1


def lorentz_output(z: Tensor, *, k: Tensor, scale: Tensor, time_offset: Tensor, dim: int = -1) -> Tensor:
    r"""Turn the Euclidean output ``z`` of a linear map into a point of :math:`\mathbb{H}_k` (HyboNet's rule).

    .. math::
        t = e^{s}\,\sigma(z_0) + c_k, \qquad
        y_s = z_s \sqrt{\frac{t^2 - k}{\max(\|z_s\|^2, \epsilon)}}, \qquad y = (t, y_s).

    With :math:`c_k > \sqrt{k}`, :math:`t^2 - k > 0` and :math:`\langle y, y\rangle_L = -k`.

    The guard :math:`\epsilon` (the machine epsilon of ``z``'s dtype) covers the one singular point of the
    rule: at :math:`z_s = 0` the direction :math:`z_s / \|z_s\|` is undefined (0/0) and its gradient grows like
    :math:`1 / \|z_s\|`. Below the guard ``y_s`` shrinks linearly to zero instead, which bounds the gradient by
    :math:`\sqrt{(t^2 - k) / \epsilon}`, and the time coordinate becomes :math:`\sqrt{k + \|y_s\|^2}` so that
    the output stays on the hyperboloid (at :math:`z_s = 0` it is the origin). A fresh layer reaches this case
    for the input at the origin, because the weight column of the time coordinate starts at zero.

    Args:
        z: output of the linear map, ``(..., d + 1)``.
        k: curvature parameter, a tensor of ``z``'s dtype.
        scale: the log-scale ``s`` of the time coordinate.
        time_offset: ``c_k``, which must exceed ``sqrt(k)``.
        dim: coordinate dimension.
    """
    z_time, z_space = z.narrow(dim, 0, 1), z.narrow(dim, 1, z.size(dim) - 1)
    time = torch.exp(scale) * torch.sigmoid(z_time) + time_offset
    # safe_norm rescales before squaring, so ||z_s|| does not overflow for huge inputs (float32 squares
    # overflow above 1.8e19).
    norm = safe_norm(z_space, dim=dim, keepdim=True)
    floor = math.sqrt(eps(z.dtype))
    space = z_space * (torch.sqrt(time * time - k) / norm.clamp_min(floor))
    projected_time = torch.hypot(safe_norm(space, dim=dim, keepdim=True), torch.sqrt(k))
    time = torch.where(norm >= floor, time, projected_time)
    return torch.cat((time, space), dim=dim)


class LorentzLinear(nn.Module):
    r"""Fully hyperbolic linear layer on :math:`\mathbb{H}_k` (Chen et al., ACL 2022, arXiv 2105.14686).

    .. math::
        z = W\,\mathrm{dropout}(h(x)) + b, \qquad y = \text{lorentz\_output}(z)

    where :func:`lorentz_output` sets the time coordinate to :math:`e^{s}\sigma(z_0) + c_k` and rescales the
    space part onto the hyperboloid. At ``k = 1`` with ``time_offset=None`` this is HyboNet's GCN layer.

    Args:
        in_features: ambient size of the input points, time included (``>= 2``).
        out_features: ambient size of the output points, time included (``>= 2``).
        manifold: a :class:`hypersst.manifolds.Lorentz`; its ``k`` is read at every call, so a learnable
            curvature is followed.
        bias: if ``True``, ``z`` gets a bias ``b``; ``b_0`` is the paper's time bias. (default: ``True``)
        dropout: dropout probability on all input coordinates, time included, as in HyboNet. (default: ``0.0``)
        nonlin: optional elementwise function ``h`` applied to all input coordinates before dropout.
        scale_init: initial value of the learnable log-scale ``s`` (default: ``ln 10``, so ``t`` starts in
            ``(c_k, c_k + 10)``).
        time_offset: ``c_k``, the lowest reachable time coordinate. ``None`` (default) means
            :math:`c_k = 1.1\sqrt{k}`, recomputed from the current ``k``; at ``k = 1`` it is HyboNet's 1.1. A number
            must exceed :math:`\sqrt{k}` and is not allowed with a learnable curvature, which could grow past it.
        method: training method of the inner linear map: ``"full"``, ``"lora"``, ``"relora"`` or ``"sst"``.
        rank: rank for the low-rank methods.
        **linear_options: passed to ``hypersst.lowrank.make_linear`` (for example ``vector_geometry`` and
            ``gradient`` for SST, ``alpha`` for LoRA, ``device``, ``dtype``).

    Shapes:
        - input: ``(..., in_features)`` points of :math:`\mathbb{H}_k`; output: ``(..., out_features)``.
        - a sparse COO or CSR input must be a matrix ``(N, in_features)``; the output ``(N, out_features)``
          is dense. Dropout then acts on the stored values only, with nn.Dropout's keep probability and
          ``1 / (1 - p)`` scaling, and the inner linear map takes the sparse matrix without densifying it.
          ``nonlin`` must be ``None`` for sparse input.

    Initialization: ``W ~ U(-1/sqrt(out), 1/sqrt(out))`` with the column that multiplies the input's time
    coordinate set to zero, ``b = 0``, ``s = scale_init``; a low-rank inner map starts from this dense ``W``.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        manifold: Lorentz,
        bias: bool = True,
        dropout: float = 0.0,
        nonlin: Optional[Callable[[Tensor], Tensor]] = None,
        scale_init: float = math.log(10.0),
        time_offset: Optional[float] = None,
        method: str = "full",
        rank: Optional[int] = None,
        **linear_options,
    ) -> None:
        super().__init__()
        name = type(self).__name__
        self.in_features = check_features(in_features, "in_features (ambient, time included)", name, 2)
        self.out_features = check_features(out_features, "out_features (ambient, time included)", name, 2)
        if not isinstance(manifold, Lorentz):
            raise TypeError(
                f"{name}: manifold must be a hypersst.manifolds.Lorentz, got {type(manifold).__name__}; use "
                "PoincareLinear for Stereographic or PoincareBall manifolds"
            )
        if nonlin is not None and not callable(nonlin):
            raise TypeError(f"{name}: nonlin must be callable or None, got {type(nonlin).__name__}")
        self.manifold = manifold
        self.nonlin = nonlin
        self.dropout = nn.Dropout(check_dropout(dropout, name))
        self.scale_init = check_real_number(scale_init, "scale_init", name)
        if time_offset is not None:
            time_offset = check_real_number(time_offset, "time_offset", name)
            if manifold.learnable:
                raise ValueError(
                    f"{name}: a fixed time_offset={time_offset!r} cannot follow a learnable curvature; pass "
                    "time_offset=None to use 1.1 * sqrt(k)"
                )
            sqrt_k = math.sqrt(float(manifold.k))
            if time_offset <= sqrt_k:
                raise ValueError(
                    f"{name}: time_offset must exceed sqrt(k) = {sqrt_k:.6g} so that t^2 - k > 0, got "
                    f"{time_offset!r}; the default None uses 1.1 * sqrt(k)"
                )
        self.time_offset = time_offset
        self.method = method
        self.linear = build_linear(in_features, out_features, bias=bias, method=method, rank=rank, **linear_options)
        reference = next(self.linear.parameters())
        self.scale = nn.Parameter(torch.empty((), dtype=reference.dtype, device=reference.device))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """HyboNet's initialization (see the class docstring), loaded into the inner linear map."""
        reference = self.scale
        bound = 1.0 / math.sqrt(self.out_features)
        weight = torch.empty(self.out_features, self.in_features, dtype=reference.dtype, device=reference.device)
        nn.init.uniform_(weight, -bound, bound)
        weight[:, 0] = 0.0
        bias = None if self.linear.bias is None else torch.zeros_like(weight[:, 0])
        load_dense_(self.linear, weight, bias, type(self).__name__)
        with torch.no_grad():
            self.scale.fill_(self.scale_init)

    def offset(self, like: Tensor) -> Tensor:
        """``c_k`` in the dtype of ``like``."""
        k = as_curvature(self.manifold.k, like)
        if self.time_offset is None:
            return TIME_OFFSET_RATIO * torch.sqrt(k)
        return torch.as_tensor(self.time_offset, dtype=like.dtype, device=like.device)

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() == 0 or x.shape[-1] != self.in_features:
            raise ValueError(
                f"{type(self).__name__}: expected inputs with last dimension {self.in_features} (ambient "
                f"coordinates, time included), got shape {tuple(x.shape)}"
            )
        if x.layout == torch.strided:
            h = self.nonlin(x) if self.nonlin is not None else x
            h = self.dropout(h)
        else:
            h = self._drop_stored_values(x)
        z = self.linear(h)
        k = as_curvature(self.manifold.k, z)
        return lorentz_output(z, k=k, scale=self.scale.to(z.dtype), time_offset=self.offset(z))

    def _drop_stored_values(self, x: Tensor) -> Tensor:
        """Apply the layer's dropout to the stored values of a sparse 2-D input, keeping it sparse.

        Entries that are not stored are zero, and dropout keeps a zero at zero, so dropping only the stored
        values has the distribution of dropout on ``x.to_dense()``.
        """
        name = type(self).__name__
        check_sparse_matrix(x, name, shape=f"(batch, {self.in_features})")
        if self.nonlin is not None:
            raise ValueError(
                f"{name}: nonlin={getattr(self.nonlin, '__name__', self.nonlin)!r} cannot act on a sparse input, "
                "because an activation need not keep the unstored zeros at zero; use nonlin=None on the layer "
                "that takes sparse input or pass a dense tensor"
            )
        if not self.training or self.dropout.p == 0.0:
            return x
        # The new tensors reuse the indices of a valid input, so torch's invariant checks would only repeat them.
        if x.layout == torch.sparse_csr:
            return torch.sparse_csr_tensor(
                x.crow_indices(), x.col_indices(), self.dropout(x.values()), x.shape, check_invariants=False
            )
        x = x.coalesce()
        return torch.sparse_coo_tensor(
            x.indices(), self.dropout(x.values()), x.shape, is_coalesced=True, check_invariants=False
        )

    def extra_repr(self) -> str:
        offset = "1.1*sqrt(k)" if self.time_offset is None else f"{self.time_offset:g}"
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, method={self.method!r}, "
            f"time_offset={offset}"
        )
