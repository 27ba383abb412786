r"""The Lorentz (hyperboloid) model, correct for every ``k > 0``.

Points live on :math:`\mathbb{H}_k = \{x \in \mathbb{R}^{d+1} : \langle x, x\rangle_L = -k,\ x_0 > 0\}` with the
Minkowski product :math:`\langle u, v\rangle_L = -u_0 v_0 + \sum_{i \ge 1} u_i v_i`. The sectional curvature is
:math:`K = -1/k`, and the origin is :math:`o = (\sqrt{k}, 0, \dots, 0)`. Sizes count ambient coordinates: a
``(..., d + 1)`` tensor contains points of a ``d``-dimensional space, time first.

The module has two halves: functions of tensors that take the curvature as a keyword (``k``, a tensor of the
input's dtype), and :class:`Lorentz`, a ``geoopt.Lorentz`` that owns the curvature and casts it to each input's
dtype before calling them.
"""

from __future__ import annotations

from typing import Optional

import geoopt
import torch
import torch.nn.functional as F
from geoopt.manifolds.base import Manifold
from torch import Tensor

from ._numerics import (
    Float64Curvature,
    as_curvature,
    asinhc,
    check_real_number,
    eps,
    inverse_softplus,
    safe_norm,
    sinhc,
    stable_acosh,
    stable_asinh,
    type_label,
)

__all__ = [
    "Lorentz",
    "centroid",
    "dist",
    "dist0",
    "expmap0",
    "from_poincare",
    "logmap0",
    "lorentz_sqdist",
    "minkowski_inner",
    "normalize_timelike",
    "projx",
    "to_poincare",
]


def _time_space(x: Tensor, dim: int) -> tuple[Tensor, Tensor]:
    return x.narrow(dim, 0, 1), x.narrow(dim, 1, x.size(dim) - 1)


def _safe_sqrt(value: Tensor) -> Tensor:
    # sqrt of a quantity that is >= 0 in exact arithmetic but may round to a tiny negative number; at 0 the
    # derivative of sqrt is infinite, so both the value and the gradient use 0 there (the subgradient convention
    # of torch.linalg.vector_norm at the zero vector).
    positive = value > 0
    root = torch.sqrt(torch.where(positive, value, torch.ones_like(value)))
    return torch.where(positive, root, torch.zeros_like(value))


def minkowski_inner(x: Tensor, y: Tensor, *, dim: int = -1, keepdim: bool = False) -> Tensor:
    r"""Minkowski product :math:`\langle x, y\rangle_L = -x_0 y_0 + \sum_{i\ge1} x_i y_i`.

    Shapes:
        - x, y: ``(..., d + 1)`` along ``dim`` (broadcastable); output: ``(...)``, or ``(..., 1)`` with keepdim.
    """
    time, space = _time_space(x * y, dim)
    out = space.sum(dim=dim, keepdim=True) - time
    return out if keepdim else out.squeeze(dim)


def projx(x: Tensor, *, k: Tensor, dim: int = -1) -> Tensor:
    """Project onto the hyperboloid by recomputing the time coordinate, ``x_0 = sqrt(k + ||x_s||^2)``."""
    _, space = _time_space(x, dim)
    # hypot does not overflow where ||x_s||^2 would.
    time = torch.hypot(safe_norm(space, dim=dim, keepdim=True), torch.sqrt(k))
    return torch.cat((time, space), dim=dim)


def expmap0(u: Tensor, *, k: Tensor, dim: int = -1) -> Tensor:
    r"""Exponential map at the origin.

    For a tangent vector :math:`u = (0, u_s)` at :math:`o` and :math:`r = \|u_s\| / \sqrt{k}`, returns
    :math:`(\sqrt{k}\cosh r,\ \frac{\sinh r}{r} u_s)`. The time coordinate of ``u`` is ignored, which is the
    projection onto the tangent space at the origin.

    Shapes:
        - u: ``(..., d + 1)``; output: ``(..., d + 1)``.
    """
    _, space = _time_space(u, dim)
    r = safe_norm(space, dim=dim, keepdim=True) / torch.sqrt(k)
    return torch.cat((torch.sqrt(k) * torch.cosh(r), sinhc(r) * space), dim=dim)


def logmap0(x: Tensor, *, k: Tensor, dim: int = -1) -> Tensor:
    r"""Logarithmic map at the origin, the inverse of :func:`expmap0`.

    Uses only the space part: with :math:`\rho = \|x_s\| / \sqrt{k}` the result is
    :math:`(0,\ \frac{\operatorname{asinh}\rho}{\rho} x_s)`. Unlike :math:`\operatorname{arcosh}(x_0/\sqrt{k})`
    this has no cancellation near the origin and is exactly zero there.

    Shapes:
        - x: ``(..., d + 1)``; output: ``(..., d + 1)`` with a zero time coordinate.
    """
    time, space = _time_space(x, dim)
    sqrt_k = torch.sqrt(k)
    norm = safe_norm(space, dim=dim, keepdim=True)
    rho = norm / sqrt_k
    # Near the origin the direction x_s / ||x_s|| is undefined, so the series form asinhc(rho) * x_s is used.
    # Far out the same function is written as length * direction: the gradient of asinhc(rho) underflows in
    # float32 once rho^2 overflows, while the direction's gradient, of size 1 / ||x_s||, stays representable.
    outer = rho > 1.0
    norm_outer = torch.where(outer, norm, torch.ones_like(norm))
    far = (sqrt_k * stable_asinh(norm_outer / sqrt_k)) * (space / norm_outer)
    near = asinhc(torch.where(outer, torch.zeros_like(rho), rho)) * space
    return torch.cat((torch.zeros_like(time), torch.where(outer, far, near)), dim=dim)


def dist0(x: Tensor, *, k: Tensor, dim: int = -1, keepdim: bool = False) -> Tensor:
    r"""Geodesic distance to the origin, :math:`\sqrt{k}\,\operatorname{asinh}(\|x_s\|/\sqrt{k})`."""
    _, space = _time_space(x, dim)
    sqrt_k = torch.sqrt(k)
    out = sqrt_k * stable_asinh(safe_norm(space, dim=dim, keepdim=True) / sqrt_k)
    return out if keepdim else out.squeeze(dim)


def lorentz_sqdist(x: Tensor, y: Tensor, *, k: Tensor, dim: int = -1, keepdim: bool = False) -> Tensor:
    r"""Squared Lorentzian distance :math:`-2k - 2\langle x, y\rangle_L` (HyboNet's decoder score at ``k = 1``).

    It is :math:`\langle x - y, x - y\rangle_L` for points on :math:`\mathbb{H}_k`, hence ``>= 0`` up to
    rounding, and equals :math:`2k(\cosh(d/\sqrt{k}) - 1)` for geodesic distance ``d``. It is not the squared
    geodesic distance.
    """
    return -2.0 * k - 2.0 * minkowski_inner(x, y, dim=dim, keepdim=keepdim)


def dist(x: Tensor, y: Tensor, *, k: Tensor, dim: int = -1, keepdim: bool = False) -> Tensor:
    r"""Geodesic distance :math:`\sqrt{k}\operatorname{arcosh}(-\langle x, y\rangle_L / k)`.

    Two routes to the same function on the hyperboloid, each used where it is accurate:

    - far apart (:math:`-\langle x, y\rangle_L \ge 2k`): the arcosh form, which has no cancellation there;
    - close together: :math:`2\sqrt{k}\operatorname{asinh}(\|x - y\|_L / (2\sqrt{k}))` with
      :math:`\|x - y\|_L^2 = \langle x - y, x - y\rangle_L`, which keeps full relative accuracy for nearby
      points, where the arcosh form loses every digit in float32.
    """
    sqrt_k = torch.sqrt(k)
    ratio = -minkowski_inner(x, y, dim=dim, keepdim=True) / k
    near = ratio < 2.0
    # Each branch gets inputs only from its own region (the other region gets a harmless constant). An unused
    # inf or NaN would otherwise leak into the gradient through torch.where.
    far = sqrt_k * stable_acosh(torch.where(near, torch.full_like(ratio, 2.0), ratio))
    diff = torch.where(near, x - y, torch.zeros_like(x - y))
    chord = _safe_sqrt(minkowski_inner(diff, diff, dim=dim, keepdim=True))
    close = 2.0 * sqrt_k * torch.asinh(chord / (2.0 * sqrt_k))
    out = torch.where(near, close, far)
    return out if keepdim else out.squeeze(dim)


def normalize_timelike(a: Tensor, *, k: Tensor, dim: int = -1) -> Tensor:
    r"""Rescale a future-pointing timelike vector onto :math:`\mathbb{H}_k`.

    The result is :math:`\sqrt{k}\,a/\sqrt{-\langle a, a\rangle_L}`.

    A non-negative, not all-zero combination of points of :math:`\mathbb{H}_k` is such a vector. A spacelike,
    lightlike or zero ``a`` has no such rescaling; the result is then NaN or infinite rather than a point made
    up by clamping. Use :meth:`Lorentz.check_point` on the result where such inputs are possible.

    :math:`-\langle a, a\rangle_L = a_0^2 - \|a_s\|^2` cancels catastrophically far from the origin: in float32
    the rounding error of the difference reaches the size of ``k`` once :math:`a_0^2 \approx k / \epsilon`,
    about a time coordinate of 1,000 at ``k = 1``, and then turns a timelike centroid spacelike. The product is
    therefore computed in float64 for narrower inputs and the scale factor cast back.
    """
    return _rescale_timelike(a, k=k, dim=dim)


def _rescale_timelike(a: Tensor, *, k: Tensor, dim: int, min_norm_sq: Optional[Tensor] = None) -> Tensor:
    wide = torch.promote_types(a.dtype, torch.float64)
    a_wide = a.to(wide)
    norm_sq = -minkowski_inner(a_wide, a_wide, dim=dim, keepdim=True)
    if min_norm_sq is not None:
        # The caller's exact lower bound, which rounding of far-out float32 points can violate.
        norm_sq = torch.maximum(norm_sq, min_norm_sq.to(wide))
    return (a_wide * torch.rsqrt(norm_sq / k.to(wide))).to(a.dtype)


def centroid(x: Tensor, weight: Optional[Tensor] = None, *, k: Tensor, dim: int = -1) -> Tensor:
    r"""Weighted Lorentzian centroid (Law et al., ICML 2019, with :math:`\beta = k`).

    Weights must be non-negative: the centroid of upper-sheet points is then well defined, and the exact
    bound :math:`-\langle a, a\rangle_L \ge k (\sum_i w_i)^2` of their weighted sum ``a`` is enforced
    against rounding.

    The point of :math:`\mathbb{H}_k` that minimizes the weighted sum of squared Lorentzian distances
    :func:`lorentz_sqdist` to the inputs: the weighted sum rescaled by :func:`normalize_timelike`.

    Args:
        x: points, ``(..., n, d + 1)``: the points along the dimension before ``dim``.
        weight: non-negative weights. ``None`` gives the plain mean over the ``n`` points; a tensor with one
            dimension fewer than ``x``, ``(..., n)``, gives one centroid; a tensor with as many dimensions as ``x``,
            ``(..., m, n)`` (dense or sparse 2-D), gives ``m`` centroids, as graph aggregation needs.
        k: curvature parameter, a tensor of ``x``'s dtype.
        dim: the coordinate dimension of ``x``.

    Shapes:
        - output: ``(..., d + 1)`` for a ``None`` or vector weight, ``(..., m, d + 1)`` for a matrix weight.
    """
    x = x.movedim(dim, -1)
    if weight is None:
        total = x.mean(dim=-2)
        weight_sum = torch.ones_like(total[..., :1])
    elif weight.dim() == x.dim() - 1:
        total = (weight.unsqueeze(-1) * x).sum(dim=-2)
        weight_sum = weight.sum(dim=-1, keepdim=True)
    elif weight.dim() == x.dim():
        if weight.is_sparse:
            total = torch.sparse.mm(weight, x)
            weight_sum = torch.sparse.sum(weight, dim=-1).to_dense().unsqueeze(-1)
        else:
            total = weight @ x
            weight_sum = weight.sum(dim=-1, keepdim=True)
    else:
        raise ValueError(
            f"centroid: weight must have {x.dim() - 1} dimensions (one weight per point) or {x.dim()} "
            f"(a matrix of weights), got shape {tuple(weight.shape)} for points of shape {tuple(x.shape)}"
        )
    # For non-negative weights w and points with -<x_i, x_j>_L >= k, the sum a satisfies
    # -<a, a>_L >= k (sum w)^2 exactly. Far from the origin, float32 points carry rounding errors of that
    # size, so the bound is enforced instead of letting the centroid turn spacelike (NaN).
    return _rescale_timelike(total, k=k, dim=-1, min_norm_sq=k * weight_sum.pow(2)).movedim(-1, dim)


def to_poincare(x: Tensor, *, k: Tensor, dim: int = -1) -> Tensor:
    r"""Map :math:`\mathbb{H}_k` isometrically onto the Poincaré ball of radius :math:`\sqrt{k}`.

    The ball is ``Stereographic(-1 / k)``: :math:`y = \sqrt{k}\,x_s / (x_0 + \sqrt{k})`.

    Shapes:
        - x: ``(..., d + 1)``; output: ``(..., d)``.
    """
    time, space = _time_space(x, dim)
    sqrt_k = torch.sqrt(k)
    return sqrt_k * space / (time + sqrt_k)


def from_poincare(y: Tensor, *, k: Tensor, dim: int = -1) -> Tensor:
    r"""Inverse of :func:`to_poincare`, for ``y`` strictly inside the ball of radius :math:`\sqrt{k}`.

    :math:`x = \big(\sqrt{k}\,(k + \|y\|^2),\ 2k\,y\big) / (k - \|y\|^2)`. Points on or outside the boundary
    have no image and give infinite or negative coordinates.

    Shapes:
        - y: ``(..., d)``; output: ``(..., d + 1)``.
    """
    sqnorm = y.pow(2).sum(dim=dim, keepdim=True)
    denom = k - sqnorm
    return torch.cat((torch.sqrt(k) * (k + sqnorm), 2.0 * k * y), dim=dim) / denom


class Lorentz(Float64Curvature, geoopt.Lorentz):
    r"""The hyperboloid :math:`\langle x, x\rangle_L = -k` with sectional curvature :math:`-1/k`.

    A ``geoopt.Lorentz`` whose operations are correct for every ``k`` (not only ``k = 1``) and run in the
    input's dtype, so float32 and float64 models share one manifold object. geoopt optimizers
    (``RiemannianAdam``, ``RiemannianSGD``) work with :class:`geoopt.ManifoldParameter` on it.

    Args:
        k: curvature parameter, a finite number ``> 0`` (default: ``1.0``, HyboNet's value). ``k = 0`` (zero
            curvature) is not reachable in this model; use :class:`hypersst.manifolds.Stereographic` for
            curvature sweeps through zero.
        learnable: if ``True``, ``k = min_k + softplus(raw_k)`` with a trainable ``raw_k``, so every optimizer
            step keeps ``k >= min_k`` without clamping. (default: ``False``)
        min_k: lower bound of a learnable ``k`` (default: ``1e-4``, curvature ``-1e4``). Ignored when
            ``learnable`` is ``False``.

    Notes:
        Fixed curvature is stored as a float64 buffer and learnable curvature as a float64 parameter, so that
        float64 models see the exact value; each operation casts it to the input's dtype. ``module.float()``
        and other dtype casts leave it, and its gradient, in float64.

        geoopt's convention for :meth:`inner` is kept in one respect: with three arguments
        ``inner(x, u, v)`` is the metric at ``x`` applied to tangent vectors ``u, v``. With two arguments it is
        the Minkowski product of the two arguments, ``inner(x, y)``.
    """

    def __init__(self, k=1.0, *, learnable: bool = False, min_k: float = 1e-4) -> None:
        # geoopt.Lorentz.__init__ would register ``k`` as a Parameter of the default dtype; this class
        # parameterizes it instead, so only the nn.Module part of the base initializer runs.
        Manifold.__init__(self)
        value = check_real_number(k, "k", "Lorentz")
        if value <= 0.0:
            raise ValueError(
                f"Lorentz: k must be > 0 (the sectional curvature is -1/k), got k={value!r}; zero curvature is "
                "not reachable in the Lorentz model, use hypersst.manifolds.Stereographic(0.0) instead"
            )
        if not isinstance(learnable, bool):
            raise TypeError(f"Lorentz: learnable must be a bool, got {type_label(learnable)}")
        self.learnable = learnable
        self.min_k = 0.0
        if learnable:
            self.min_k = check_real_number(min_k, "min_k", "Lorentz")
            if not 0.0 < self.min_k < value:
                raise ValueError(
                    f"Lorentz: a learnable k needs 0 < min_k < k, got min_k={self.min_k!r} and k={value!r}"
                )
            raw = inverse_softplus(value - self.min_k)
            self.raw_k = torch.nn.Parameter(torch.tensor(raw, dtype=torch.float64))
        else:
            self.register_buffer("k_value", torch.tensor(value, dtype=torch.float64))

    @property
    def k(self) -> Tensor:
        """Curvature parameter ``k > 0``, a 0-dim tensor (differentiable when learnable)."""
        if self.learnable:
            return self.min_k + F.softplus(self.raw_k)
        return self.k_value

    @property
    def curvature(self) -> Tensor:
        """Sectional curvature ``K = -1/k``."""
        return -1.0 / self.k

    def extra_repr(self) -> str:
        return f"k={self.k.item():.6g}, learnable={self.learnable}"

    def _k(self, x: Tensor) -> Tensor:
        return as_curvature(self.k, x)

    # ------------------------------------------------------------------ products and norms
    def inner(
        self, x: Tensor, y: Tensor, v: Optional[Tensor] = None, *, keepdim: bool = False, dim: int = -1
    ) -> Tensor:
        """Minkowski product ``<x, y>_L``; with ``v``, the metric at ``x`` of tangent vectors ``y`` and ``v``."""
        if v is None:
            return minkowski_inner(x, y, dim=dim, keepdim=keepdim)
        return minkowski_inner(y, v, dim=dim, keepdim=keepdim)

    def component_inner(self, x: Tensor, u: Tensor, v: Optional[Tensor] = None) -> Tensor:
        """Metric at ``x`` of tangent vectors ``u`` and ``v`` (``v = u`` when omitted); used by RiemannianAdam."""
        return minkowski_inner(u, u if v is None else v, keepdim=True)

    def norm(self, u: Tensor, *, keepdim: bool = False, dim: int = -1) -> Tensor:
        """Length ``sqrt(<u, u>_L)`` of a tangent (spacelike) vector."""
        return _safe_sqrt(minkowski_inner(u, u, dim=dim, keepdim=keepdim))

    # ------------------------------------------------------------------ maps at the origin
    def expmap0(self, u: Tensor, *, project: bool = True, dim: int = -1) -> Tensor:
        """Exponential map at the origin; see :func:`expmap0`. ``project`` recomputes the time coordinate."""
        out = expmap0(u, k=self._k(u), dim=dim)
        return self.projx(out, dim=dim) if project else out

    def logmap0(self, y: Tensor, *, dim: int = -1) -> Tensor:
        """Logarithmic map at the origin; see :func:`logmap0`."""
        return logmap0(y, k=self._k(y), dim=dim)

    def dist0(self, x: Tensor, *, keepdim: bool = False, dim: int = -1) -> Tensor:
        """Geodesic distance to the origin."""
        return dist0(x, k=self._k(x), dim=dim, keepdim=keepdim)

    def origin(self, *size, dtype=None, device=None, seed=42) -> geoopt.ManifoldTensor:
        """The origin ``(sqrt(k), 0, ..., 0)`` broadcast to ``size``; ``seed`` is ignored."""
        k = self.k.detach()
        dtype = dtype or torch.get_default_dtype()
        point = torch.zeros(*size, dtype=dtype, device=device or k.device)
        point[..., 0] = torch.sqrt(k).to(dtype)
        return geoopt.ManifoldTensor(point, manifold=self)

    # ------------------------------------------------------------------ distances
    def dist(self, x: Tensor, y: Tensor, *, keepdim: bool = False, dim: int = -1) -> Tensor:
        """Geodesic distance; see :func:`dist`."""
        return dist(x, y, k=self._k(x), dim=dim, keepdim=keepdim)

    def lorentz_sqdist(self, x: Tensor, y: Tensor, *, keepdim: bool = False, dim: int = -1) -> Tensor:
        """Squared Lorentzian distance ``-2k - 2<x, y>_L``; see :func:`lorentz_sqdist`."""
        return lorentz_sqdist(x, y, k=self._k(x), dim=dim, keepdim=keepdim)

    # ------------------------------------------------------------------ centroids and model maps
    def normalize_timelike(self, a: Tensor, *, dim: int = -1) -> Tensor:
        """Rescale a future-pointing timelike vector onto this hyperboloid; see :func:`normalize_timelike`."""
        return normalize_timelike(a, k=self._k(a), dim=dim)

    def centroid(self, x: Tensor, weight: Optional[Tensor] = None, *, dim: int = -1) -> Tensor:
        """Weighted Lorentzian centroid; see :func:`centroid`."""
        return centroid(x, weight, k=self._k(x), dim=dim)

    def to_poincare(self, x: Tensor, *, dim: int = -1) -> Tensor:
        """Map to the Poincaré ball ``Stereographic(-1 / k)``; see :func:`to_poincare`."""
        return to_poincare(x, k=self._k(x), dim=dim)

    def from_poincare(self, y: Tensor, *, dim: int = -1) -> Tensor:
        """Map from the Poincaré ball ``Stereographic(-1 / k)``; see :func:`from_poincare`."""
        return from_poincare(y, k=self._k(y), dim=dim)

    # ------------------------------------------------------------------ checks
    def check_point(self, x: Tensor, *, dim: int = -1, atol: Optional[float] = None) -> None:
        r"""Raise ``ValueError`` unless every point of ``x`` lies on this hyperboloid's upper sheet.

        A point passes when it is finite, has :math:`x_0 > 0`, and
        :math:`|\langle x, x\rangle_L + k| \le` ``atol``. The default ``atol`` is relative to the size of the
        coordinates, :math:`64\,\epsilon\,(k + \|x\|_2^2)` with the dtype's machine epsilon, because that is the
        rounding error of computing :math:`\langle x, x\rangle_L` itself.

        Raises:
            ValueError: naming the largest violation and its tolerance.
        """
        if not torch.is_floating_point(x):
            raise TypeError(f"Lorentz.check_point: expected a floating tensor, got dtype {x.dtype}")
        x = x.detach()
        if not bool(torch.isfinite(x).all()):
            raise ValueError("Lorentz.check_point: the points contain NaN or infinite coordinates")
        k = self._k(x).detach()
        time, _ = _time_space(x, dim)
        if bool((time <= 0).any()):
            raise ValueError(
                f"Lorentz.check_point: time coordinate must be > 0 (upper sheet), smallest is {time.min().item():.6g}"
            )
        residual = (minkowski_inner(x, x, dim=dim) + k).abs()
        if atol is None:
            tolerance = 64.0 * eps(x.dtype) * (k + x.pow(2).sum(dim=dim))
        else:
            tolerance = torch.full_like(residual, float(atol))
        excess = residual - tolerance
        worst = int(excess.flatten().argmax())
        if float(excess.flatten()[worst]) > 0:
            raise ValueError(
                f"Lorentz.check_point: |<x, x>_L + k| = {residual.flatten()[worst].item():.6g} exceeds the "
                f"tolerance {tolerance.flatten()[worst].item():.6g} (k = {k.item():.6g}); project with projx() "
                "or normalize_timelike()"
            )

    def _check_point_on_manifold(self, x: Tensor, *, atol=1e-5, rtol=1e-5, dim=-1):
        residual = minkowski_inner(x, x, dim=dim) + self._k(x)
        ok = bool(torch.allclose(residual, torch.zeros_like(residual), atol=atol, rtol=rtol))
        return ok, None if ok else f"'x' Minkowski quadratic form is not equal to {-self.k.item()}"

    def _check_vector_on_tangent(self, x: Tensor, u: Tensor, *, atol=1e-5, rtol=1e-5, dim=-1):
        product = minkowski_inner(x, u, dim=dim)
        ok = bool(torch.allclose(product, torch.zeros_like(product), atol=atol, rtol=rtol))
        return ok, None if ok else "Minkowski inner product of x and u is not zero"

    # ------------------------------------------------------------------ what geoopt optimizers call
    def projx(self, x: Tensor, *, dim: int = -1) -> Tensor:
        """Recompute the time coordinate so that ``x`` lies on the hyperboloid."""
        return projx(x, k=self._k(x), dim=dim)

    def proju(self, x: Tensor, v: Tensor, *, dim: int = -1) -> Tensor:
        """Project an ambient vector onto the tangent space at ``x``: ``v + <x, v>_L x / k``."""
        return v + minkowski_inner(x, v, dim=dim, keepdim=True) * x / self._k(x)

    def egrad2rgrad(self, x: Tensor, u: Tensor, *, dim: int = -1) -> Tensor:
        """Riemannian gradient from a Euclidean one: flip the time sign (inverse metric), then project.

        Unlike geoopt's version this does not modify ``u`` in place.
        """
        time, space = _time_space(u, dim)
        return self.proju(x, torch.cat((-time, space), dim=dim), dim=dim)

    def expmap(self, x: Tensor, u: Tensor, *, norm_tan: bool = True, project: bool = True, dim: int = -1) -> Tensor:
        r"""Exponential map :math:`\cosh(r)\,x + \frac{\sinh r}{r} u` with :math:`r = \|u\|_L / \sqrt{k}`."""
        if norm_tan:
            u = self.proju(x, u, dim=dim)
        k = self._k(x)
        r = self.norm(u, dim=dim, keepdim=True) / torch.sqrt(k)
        out = torch.cosh(r) * x + sinhc(r) * u
        return self.projx(out, dim=dim) if project else out

    retr = expmap

    def logmap(self, x: Tensor, y: Tensor, *, dim: int = -1) -> Tensor:
        """Logarithmic map: the tangent vector at ``x`` of length ``dist(x, y)`` pointing at ``y``."""
        k = self._k(x)
        direction = y + minkowski_inner(x, y, dim=dim, keepdim=True) * x / k
        length = self.norm(direction, dim=dim, keepdim=True)
        # y = x gives a zero direction; the where-trick returns the zero vector with a finite gradient.
        nonzero = length > 0
        scale = dist(x, y, k=k, dim=dim, keepdim=True) / torch.where(nonzero, length, torch.ones_like(length))
        return torch.where(nonzero, scale * direction, torch.zeros_like(direction))

    def transp(self, x: Tensor, y: Tensor, v: Tensor, *, dim: int = -1) -> Tensor:
        r"""Parallel transport of ``v`` from ``x`` to ``y``.

        The result is :math:`v + \frac{\langle y, v\rangle_L}{k - \langle x, y\rangle_L}(x + y)`.

        The denominator is at least ``2k`` for two points of the upper sheet, so it needs no guard.
        """
        k = self._k(x)
        coefficient = minkowski_inner(y, v, dim=dim, keepdim=True) / (k - minkowski_inner(x, y, dim=dim, keepdim=True))
        return v + coefficient * (x + y)

    def _origin_like(self, x: Tensor, dim: int) -> Tensor:
        origin = torch.zeros_like(x)
        origin.narrow(dim, 0, 1).copy_(torch.sqrt(self._k(x)).detach().expand_as(origin.narrow(dim, 0, 1)))
        return origin

    def transp0(self, y: Tensor, u: Tensor, *, dim: int = -1) -> Tensor:
        """Parallel transport of ``u`` from the origin to ``y``."""
        return self.transp(self._origin_like(y, dim), y, u, dim=dim)

    def transp0back(self, x: Tensor, u: Tensor, *, dim: int = -1) -> Tensor:
        """Parallel transport of ``u`` from ``x`` to the origin."""
        return self.transp(x, self._origin_like(x, dim), u, dim=dim)
