r"""Stereographic models of non-positive curvature: the Poincaré ball and, at :math:`\kappa = 0`, flat space.

:class:`Stereographic` uses the signed curvature :math:`\kappa = K \le 0` directly. For :math:`\kappa < 0` the
points are the open ball of radius :math:`1/\sqrt{|\kappa|}`; for :math:`\kappa = 0` they are all of
:math:`\mathbb{R}^d` and every operation is the Euclidean one (geoopt's stereographic math switches to series
expansions near zero, so the limit :math:`\kappa \to 0^-` is continuous). :class:`PoincareBall` is the same
model written with :math:`c = -\kappa \ge 0`.

geoopt's metric on this model is :math:`\lambda_x^2` times the Euclidean one, with
:math:`\lambda_x = 2 / (1 + \kappa\|x\|^2)`. At :math:`\kappa = 0` the maps ``expmap0``/``logmap0`` are the
identity and Möbius addition is ``+``, so layers reduce to Euclidean ones exactly, but ``dist`` is
:math:`2\|x - y\|`, twice the Euclidean distance.

All operations cast the curvature to the input's dtype, so one manifold object serves float32 and float64.
"""

from __future__ import annotations

from typing import Optional

import geoopt
import torch
import torch.nn.functional as F
from geoopt.manifolds.base import Manifold
from geoopt.manifolds.stereographic import math as smath
from torch import Tensor

from ._numerics import Float64Curvature, as_curvature, check_real_number, inverse_softplus, type_label

__all__ = ["Euclidean", "PoincareBall", "Stereographic"]


class Stereographic(Float64Curvature, geoopt.Stereographic):
    r"""Stereographic model with signed curvature :math:`\kappa \le 0`.

    Args:
        k: the curvature :math:`\kappa`, a finite number ``<= 0`` (default: ``0.0``, flat space). Positive
            curvature (the sphere) is outside hypersst's convention; ``geoopt.SphereProjection`` provides it.
        learnable: if ``True``, :math:`\kappa = -\operatorname{softplus}(\text{raw\_k})` with a trainable
            ``raw_k``, which keeps :math:`\kappa < 0` through any update (it can reach ``-0.0`` only by float
            underflow, which is again a valid, flat manifold). A learnable curvature must start below zero.
            (default: ``False``)

    Notes:
        The curvature is stored in float64 (a buffer, or the parameter ``raw_k``) and cast to each input's dtype.
    """

    def __init__(self, k=0.0, *, learnable: bool = False) -> None:
        # geoopt.Stereographic.__init__ would register ``k`` as a Parameter of the default dtype; this class
        # parameterizes it instead, so only the nn.Module part of the base initializer runs.
        Manifold.__init__(self)
        value = check_real_number(k, "k", type(self).__name__)
        if value > 0.0:
            raise ValueError(
                f"{type(self).__name__}: k is the sectional curvature and must be <= 0, got k={value!r}; use "
                "geoopt.SphereProjection for positive curvature"
            )
        self._init_curvature(-value, learnable, "k", value)

    def _init_curvature(self, magnitude: float, learnable: bool, label: str, given: float) -> None:
        if not isinstance(learnable, bool):
            raise TypeError(f"{type(self).__name__}: learnable must be a bool, got {type_label(learnable)}")
        self.learnable = learnable
        if learnable:
            if magnitude <= 0.0:
                raise ValueError(
                    f"{type(self).__name__}: a learnable curvature is parameterized to stay strictly negative "
                    f"and cannot start at {label}={given!r}; start from a small value such as "
                    f"{label}={'-1e-3' if label == 'k' else '1e-3'}"
                )
            self.raw_k = torch.nn.Parameter(torch.tensor(inverse_softplus(magnitude), dtype=torch.float64))
        else:
            self.register_buffer("k_value", torch.tensor(-magnitude, dtype=torch.float64))

    @property
    def k(self) -> Tensor:
        """Signed curvature :math:`\\kappa \\le 0`, a 0-dim tensor (differentiable when learnable)."""
        if self.learnable:
            return -F.softplus(self.raw_k)
        return self.k_value

    @property
    def curvature(self) -> Tensor:
        """Sectional curvature ``K = kappa``."""
        return self.k

    @property
    def is_flat(self) -> bool:
        """``True`` for a fixed curvature of exactly zero, where every operation is Euclidean."""
        return not self.learnable and float(self.k_value) == 0.0

    def extra_repr(self) -> str:
        return f"k={self.k.item():.6g}, learnable={self.learnable}"

    def _k(self, x: Tensor) -> Tensor:
        return as_curvature(self.k, x)

    # geoopt's methods pass ``self.k`` to its math functions; these overrides pass it in the input's dtype.
    def projx(self, x: Tensor, *, dim: int = -1) -> Tensor:
        """Pull points that rounding put on or beyond the boundary back inside the ball (geoopt's margin)."""
        return smath.project(x, k=self._k(x), dim=dim)

    def proju(self, x: Tensor, u: Tensor, *, dim: int = -1) -> Tensor:
        return u

    def egrad2rgrad(self, x: Tensor, u: Tensor, *, dim: int = -1) -> Tensor:
        return smath.egrad2rgrad(x, u, k=self._k(x), dim=dim)

    def inner(
        self, x: Tensor, u: Tensor, v: Optional[Tensor] = None, *, keepdim: bool = False, dim: int = -1
    ) -> Tensor:
        if v is None:
            v = u
        return smath.inner(x, u, v, k=self._k(x), keepdim=keepdim, dim=dim)

    def norm(self, x: Tensor, u: Tensor, *, keepdim: bool = False, dim: int = -1) -> Tensor:
        return smath.norm(x, u, k=self._k(x), keepdim=keepdim, dim=dim)

    def lambda_x(self, x: Tensor, *, dim: int = -1, keepdim: bool = False) -> Tensor:
        return smath.lambda_x(x, k=self._k(x), dim=dim, keepdim=keepdim)

    def dist(self, x: Tensor, y: Tensor, *, keepdim: bool = False, dim: int = -1) -> Tensor:
        return smath.dist(x, y, k=self._k(x), keepdim=keepdim, dim=dim)

    def dist0(self, x: Tensor, *, dim: int = -1, keepdim: bool = False) -> Tensor:
        return smath.dist0(x, k=self._k(x), dim=dim, keepdim=keepdim)

    def expmap(self, x: Tensor, u: Tensor, *, project: bool = True, dim: int = -1) -> Tensor:
        out = smath.expmap(x, u, k=self._k(x), dim=dim)
        return self.projx(out, dim=dim) if project else out

    def retr(self, x: Tensor, u: Tensor, *, dim: int = -1) -> Tensor:
        """First-order retraction ``x + u``, pulled back inside the ball."""
        return self.projx(x + u, dim=dim)

    def logmap(self, x: Tensor, y: Tensor, *, dim: int = -1) -> Tensor:
        return smath.logmap(x, y, k=self._k(x), dim=dim)

    def expmap0(self, u: Tensor, *, dim: int = -1, project: bool = True) -> Tensor:
        out = smath.expmap0(u, k=self._k(u), dim=dim)
        return self.projx(out, dim=dim) if project else out

    def logmap0(self, x: Tensor, *, dim: int = -1) -> Tensor:
        return smath.logmap0(x, k=self._k(x), dim=dim)

    def transp(self, x: Tensor, y: Tensor, v: Tensor, *, dim: int = -1) -> Tensor:
        return smath.parallel_transport(x, y, v, k=self._k(x), dim=dim)

    def mobius_add(self, x: Tensor, y: Tensor, *, dim: int = -1, project: bool = True) -> Tensor:
        out = smath.mobius_add(x, y, k=self._k(x), dim=dim)
        return self.projx(out, dim=dim) if project else out

    def mobius_matvec(self, m: Tensor, x: Tensor, *, dim: int = -1, project: bool = True) -> Tensor:
        out = smath.mobius_matvec(m, x, k=self._k(x), dim=dim)
        return self.projx(out, dim=dim) if project else out

    def mobius_scalar_mul(self, r: Tensor, x: Tensor, *, dim: int = -1, project: bool = True) -> Tensor:
        out = smath.mobius_scalar_mul(r, x, k=self._k(x), dim=dim)
        return self.projx(out, dim=dim) if project else out

    def check_point(self, x: Tensor, *, dim: int = -1) -> None:
        """Raise ``ValueError`` unless every point is finite and strictly inside the ball."""
        x = x.detach()
        if not bool(torch.isfinite(x).all()):
            raise ValueError(f"{type(self).__name__}.check_point: the points contain NaN or infinite coordinates")
        k = float(self.k.detach())
        if k == 0.0:
            return
        radius = (-k) ** -0.5
        largest = float(x.norm(dim=dim).max()) if x.numel() else 0.0
        if largest >= radius:
            raise ValueError(
                f"{type(self).__name__}.check_point: largest norm {largest:.6g} is not below the ball radius "
                f"{radius:.6g} (k = {k:.6g}); project with projx()"
            )


class PoincareBall(Stereographic, geoopt.PoincareBall):
    r"""Poincaré ball written with :math:`c = -\kappa \ge 0`: radius :math:`1/\sqrt{c}`, ``c = 0`` is flat.

    Args:
        c: a finite number ``>= 0`` (default: ``1.0``).
        learnable: if ``True``, :math:`c = \operatorname{softplus}(\text{raw\_k}) > 0`; ``c`` must then start
            above zero. (default: ``False``)
    """

    def __init__(self, c=1.0, *, learnable: bool = False) -> None:
        Manifold.__init__(self)
        value = check_real_number(c, "c", "PoincareBall")
        if value < 0.0:
            raise ValueError(
                f"PoincareBall: c = -kappa must be >= 0, got c={value!r}; negative c would be a sphere, which "
                "geoopt.SphereProjection provides"
            )
        self._init_curvature(value, learnable, "c", value)

    @property
    def c(self) -> Tensor:
        """``c = -kappa >= 0``."""
        return -self.k


class Euclidean(geoopt.Euclidean):
    """Flat space: the zero-curvature manifold that hyperbolic layers reduce to their Euclidean linear with.

    Args:
        ndim: number of trailing dimensions that make up one point (default: ``1``, vectors).
    """

    def __init__(self, ndim: int = 1) -> None:
        if isinstance(ndim, bool) or not isinstance(ndim, int) or ndim < 0:
            raise ValueError(f"Euclidean: ndim must be a non-negative int, got {ndim!r}")
        super().__init__(ndim=ndim)

    @property
    def curvature(self) -> Tensor:
        """Sectional curvature, ``0``."""
        return torch.zeros((), dtype=torch.float64)
