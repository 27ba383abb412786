r"""Manifolds of non-positive curvature, built on geoopt, with one curvature convention.

**The convention.** :math:`K \le 0` is the sectional curvature. Every manifold here states it through the
``curvature`` property, and each model maps it to its own parameter:

- :class:`Lorentz` (hyperboloid) uses geoopt's :math:`k = -1/K > 0`. Points satisfy
  :math:`\langle x, x\rangle_L = -k` with the Minkowski product
  :math:`\langle x, y\rangle_L = -x_0 y_0 + \sum_{i \ge 1} x_i y_i`, the time coordinate at index 0, and sizes
  count ambient coordinates (a ``d``-dimensional space has ``d + 1`` coordinates), as in HyboNet.
  ``Lorentz(k)`` with ``k <= 0`` raises ``ValueError``: the model cannot reach :math:`K = 0`.
- :class:`Stereographic` uses :math:`\kappa = K` directly: :math:`\kappa < 0` is the Poincaré ball of radius
  :math:`1/\sqrt{|\kappa|}` and :math:`\kappa = 0` is exactly Euclidean space. Curvature sweeps through zero use
  this model.
- :class:`PoincareBall` is the same model written with :math:`c = -\kappa \ge 0`.
- :class:`Euclidean` is flat space; hyperbolic layers given it reduce to their Euclidean linear map.

A curvature is fixed or learnable. A learnable one stays valid through its parameterization, a softplus of an
unconstrained raw parameter (``k = min_k + softplus(raw_k)`` for Lorentz, ``kappa = -softplus(raw_k)`` for
Stereographic), never by clamping after an optimizer step.

Every operation casts the curvature to the dtype of its input, so float32 and float64 models can share a manifold
and float64 keeps full precision.
"""

from .lorentz import Lorentz
from .stereographic import Euclidean, PoincareBall, Stereographic

__all__ = ["Euclidean", "Lorentz", "PoincareBall", "Stereographic"]
