"""Validated configuration for Sparse Spectral Training."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal, Optional

__all__ = ["GRADIENTS", "ORDERED_SAMPLINGS", "RANDOM_SAMPLINGS", "SAMPLINGS", "STATE_RESETS", "WARMUP_SCOPES", "SSTConfig"]

STATE_RESETS = ("moments", "restart")
"""Values of :attr:`SSTConfig.state_reset`."""

RANDOM_SAMPLINGS = ("mixed", "proportional", "uniform")
"""Sampling rules that draw triplets at random."""

ORDERED_SAMPLINGS = ("sequential", "top")
"""Sampling rules that choose triplets without randomness."""

SAMPLINGS = RANDOM_SAMPLINGS + ORDERED_SAMPLINGS
"""Values of :attr:`SSTConfig.sampling`."""

GRADIENTS = ("enhanced", "default")
"""Values of :attr:`SSTConfig.gradient`."""

WARMUP_SCOPES = ("all", "reset")
"""Values of :attr:`SSTConfig.warmup_scope`."""

_CHOICES = {
    "sampling": SAMPLINGS,
    "gradient": GRADIENTS,
    "vector_geometry": ("euclidean", "sphere"),
    "state_reset": STATE_RESETS,
    "warmup_scope": WARMUP_SCOPES,
}


def _require_int(name: str, value: Any, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"SSTConfig.{name} must be an int, got {type(value).__name__} {value!r}")
    if value < minimum:
        raise ValueError(f"SSTConfig.{name} must be >= {minimum}, got {value}")


@dataclass(frozen=True)
class SSTConfig:
    """Schedule and options of Sparse Spectral Training (Zhao et al., ICML 2025, arXiv 2405.15481).

    A *step* is one optimizer step, an *iteration* is ``steps_per_iteration`` steps with one set of
    active singular-vector triplets, and a *round* is ``iterations_per_round`` iterations, after which
    every SST layer is re-factorized by SVD.

    Args:
        rank: number of active singular-vector triplets ``r`` per layer.
        steps_per_iteration: optimizer steps between two resamplings (``T3``).
        iterations_per_round: iterations between two re-SVDs (``T2``). ``None`` means
            ``ceil(k / r)`` for each layer, where ``k = min(in_features, out_features)``, so that every
            triplet is expected to be active once per round.
        warmup_steps: length of the linear learning-rate warm-up at the start of each iteration; the
            learning rate of step ``t`` of an iteration is multiplied by ``min(1, (t + 1) / warmup_steps)``.
            ``0`` disables it.
        warmup_scope: which parameter groups the warm-up scales. ``"all"`` scales every group, as
            ReLoRA's jagged schedule does. ``"reset"`` scales only the groups that contain a parameter whose
            optimizer state restarts at the iteration's start. These are the active singular vectors and the
            LoRA factors of ReLoRA* layers at every iteration, and the singular values ``S`` of a layer in
            the iteration after its re-SVD. The other groups train at their base rate throughout. With a
            single parameter group both scopes give the same schedule. Put the singular vectors
            (:func:`hypersst.singular_vector_parameters`) and the singular values
            (:func:`hypersst.singular_value_parameters`) in groups of their own so that the warm-up
            reaches nothing else.
        sampling: ``"mixed"`` draws triplet ``i`` with probability ``(1/k + s_i / sum(s)) / 2``;
            ``"proportional"`` uses ``s_i / sum(s)`` and ``"uniform"`` ``1/k``. ``"sequential"`` trains the
            triplets in turn, from the largest singular value at each re-SVD down, so that a round of
            ``ceil(k / r)`` iterations trains each of them. When ``r`` does not divide ``k``, the round's last
            iteration also trains the first triplets again, and rounds shorter than ``ceil(k / r)`` are
            rejected. ``"top"`` always trains the ``r`` largest.
        gradient: ``"enhanced"`` gives active vectors the gradient ``G v_i`` and ``G^T u_i`` (not scaled by
            ``s_i``); ``"default"`` gives the true gradient.
        vector_geometry: ``"euclidean"`` trains active vectors as plain parameters renormalized after each
            step; ``"sphere"`` makes them ``geoopt.ManifoldParameter`` on ``geoopt.Sphere`` so that a
            Riemannian optimizer projects and retracts them.
        seed: seed of the sampling generator. Every process of a distributed run must use the same seed so
            that all ranks draw the same indices.
        state_reset: what happens to the optimizer state of newly trained parameters. ``"moments"`` zeroes
            the moments of the swapped vectors at each resampling, of ``S`` and the active vectors at each
            re-SVD, and of the LoRA factors at each ReLoRA* merge, while the step counters run on (ReLoRA's
            reset). Adam's bias correction then treats the zeroed moments as long averages. For a steady
            gradient and a counter in the thousands, its updates grow to about 6.5 times its first step
            within a dozen steps and are still 1.6 times larger after 500 steps. The warm-up damps only
            the first ones. ``"restart"`` resets moments and step counters, so Adam restarts exactly. At
            each resampling the state of every active vector then restarts, including triplets that stay
            active, because one step counter serves all rows of a parameter.
    """

    rank: int = field(metadata={"help": "active triplets r per layer"})
    steps_per_iteration: int = field(default=200, metadata={"help": "optimizer steps per iteration (T3)"})
    iterations_per_round: Optional[int] = field(
        default=None, metadata={"help": "iterations per round (T2); None means ceil(k / r) per layer"}
    )
    warmup_steps: int = field(default=20, metadata={"help": "linear warm-up steps at each iteration start"})
    sampling: Literal["mixed", "proportional", "uniform", "sequential", "top"] = field(default="mixed", metadata={"help": "sampling rule"})
    gradient: Literal["enhanced", "default"] = field(default="enhanced", metadata={"help": "vector gradient"})
    vector_geometry: Literal["euclidean", "sphere"] = field(
        default="euclidean", metadata={"help": "geometry of the active singular vectors"}
    )
    seed: int = field(default=0, metadata={"help": "seed of the sampling generator"})
    state_reset: Literal["moments", "restart"] = field(
        default="moments", metadata={"help": "optimizer-state reset: moments only, or moments and step counters"}
    )
    warmup_scope: Literal["all", "reset"] = field(
        default="all", metadata={"help": "groups the warm-up scales: all, or those holding reset parameters"}
    )

    def __post_init__(self) -> None:
        _require_int("rank", self.rank, 1)
        _require_int("steps_per_iteration", self.steps_per_iteration, 1)
        if self.iterations_per_round is not None:
            _require_int("iterations_per_round", self.iterations_per_round, 1)
        _require_int("warmup_steps", self.warmup_steps, 0)
        _require_int("seed", self.seed, 0)
        if self.warmup_steps > self.steps_per_iteration:
            raise ValueError(
                f"SSTConfig.warmup_steps ({self.warmup_steps}) exceeds steps_per_iteration "
                f"({self.steps_per_iteration}); the warm-up would never finish. Lower warmup_steps."
            )
        for name, choices in _CHOICES.items():
            value = getattr(self, name)
            if value not in choices:
                raise ValueError(f"SSTConfig.{name} must be one of {choices}, got {value!r}")

    def to_dict(self) -> dict:
        """Return the fields as a plain dictionary (for logs and checkpoints)."""
        return dataclasses.asdict(self)
