"""LoRA and ReLoRA* linear layers."""

from __future__ import annotations

import math
from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from hypersst._validation import check_rank, linear_from_weight
from hypersst.lowrank.optim_state import reset_optimizer_state

__all__ = ["LoRALinear", "ReLoRALinear"]


def wide_dtype(dtype: torch.dtype) -> torch.dtype:
    """Return ``dtype`` promoted to at least float32, the precision used for merges and SVDs."""
    return torch.promote_types(dtype, torch.float32)


def kaiming_uniform_(tensor: Tensor, generator: Optional[torch.Generator] = None) -> Tensor:
    """Fill ``tensor`` as ``nn.Linear`` initializes its weight: Kaiming-uniform with ``a = sqrt(5)``.

    With ``a = sqrt(5)`` the bound ``gain * sqrt(3 / fan_in)`` simplifies to ``1 / sqrt(fan_in)``, where
    ``fan_in = tensor.shape[1]``. Draws come from ``generator`` when one is given. A generator on
    another device (such as a CPU generator for a CUDA tensor) draws on its own device first.
    """
    if generator is None or generator.device.type == tensor.device.type:
        return nn.init.kaiming_uniform_(tensor, a=math.sqrt(5), generator=generator)
    draw = torch.empty(tensor.shape, dtype=tensor.dtype, device=generator.device)
    nn.init.kaiming_uniform_(draw, a=math.sqrt(5), generator=generator)
    with torch.no_grad():
        return tensor.copy_(draw)


class LoRALinear(nn.Module):
    r"""Linear layer with a frozen weight and a trainable low-rank update (LoRA, Hu et al. 2021).

    .. math::
        y = x W^\top + \frac{\alpha}{r}\, (x A^\top) B^\top + b

    ``W`` is stored in the frozen buffer ``base_weight``. ``lora_A`` starts Kaiming-uniform as
    ``nn.Linear`` initializes its weight, and ``lora_B`` starts at zero, so a fresh layer computes
    ``x W^T + b``. The bias, when present, is trainable.

    Args:
        in_features: size of each input sample.
        out_features: size of each output sample.
        rank: rank ``r`` of the update, ``1 <= r <= min(in_features, out_features)``.
        bias: if ``True`` (default), adds a trainable bias.
        alpha: numerator of the update scale ``alpha / r`` (default: ``None``, meaning ``alpha = r`` and a
            scale of 1).
        device: device of the new tensors.
        dtype: dtype of the new tensors.

    Shapes:
        - input: ``(..., in_features)``; output: ``(..., out_features)``
        - ``base_weight``: ``(out_features, in_features)``, ``lora_A``: ``(r, in_features)``,
          ``lora_B``: ``(out_features, r)``

    Trainable parameters: ``r * (in_features + out_features)`` plus ``out_features`` with a bias.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        rank: int,
        bias: bool = True,
        *,
        alpha: Optional[float] = None,
        device=None,
        dtype=None,
    ) -> None:
        super().__init__()
        name = type(self).__name__
        for label, value in (("in_features", in_features), ("out_features", out_features)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name}: {label} must be a positive int, got {value!r}")
        check_rank(rank, in_features, out_features, name)
        if alpha is None:
            alpha = float(rank)
        if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not math.isfinite(alpha) or alpha <= 0:
            raise ValueError(f"{name}: alpha must be a finite number > 0 or None (meaning alpha = rank), got {alpha!r}")

        factory = {"device": device, "dtype": dtype}
        self.in_features = in_features
        self.out_features = out_features
        self.rank = rank
        self.alpha = float(alpha)
        self.scaling = self.alpha / rank
        self.register_buffer("base_weight", torch.empty(out_features, in_features, **factory))
        self.lora_A = nn.Parameter(torch.empty(rank, in_features, **factory))
        self.lora_B = nn.Parameter(torch.empty(out_features, rank, **factory))
        if bias:
            self.bias = nn.Parameter(torch.empty(out_features, **factory))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Initialize ``base_weight`` and ``bias`` as ``nn.Linear`` does, then the LoRA factors."""
        with torch.no_grad():
            kaiming_uniform_(self.base_weight)
            if self.bias is not None:
                bound = 1.0 / math.sqrt(self.in_features)
                self.bias.uniform_(-bound, bound)
        self.reset_lora_parameters()

    def reset_lora_parameters(self, generator: Optional[torch.Generator] = None) -> None:
        """Set ``lora_A`` to a fresh Kaiming-uniform draw (from ``generator`` if given) and ``lora_B`` to 0."""
        with torch.no_grad():
            kaiming_uniform_(self.lora_A, generator=generator)
            self.lora_B.zero_()

    @classmethod
    def from_linear(cls, linear: nn.Linear, rank: int, alpha: Optional[float] = None):
        """Build a layer whose frozen weight and bias are copies of ``linear``'s.

        ``lora_B`` starts at zero, so the new layer returns exactly ``linear``'s outputs.

        Args:
            linear: the layer to convert; its tensors are copied, not shared.
            rank: rank of the update.
            alpha: numerator of the update scale (default: ``rank``).

        Raises:
            TypeError: if ``linear`` is not an ``nn.Linear``.
            ValueError: if ``rank`` is out of range.
        """
        if not isinstance(linear, nn.Linear):
            raise TypeError(f"{cls.__name__}.from_linear: expected an nn.Linear, got {type(linear).__name__}")
        layer = cls(
            linear.in_features,
            linear.out_features,
            rank,
            bias=linear.bias is not None,
            alpha=alpha,
            device=linear.weight.device,
            dtype=linear.weight.dtype,
        )
        with torch.no_grad():
            layer.base_weight.copy_(linear.weight)
            if linear.bias is not None:
                layer.bias.copy_(linear.bias)
                layer.bias.requires_grad_(linear.bias.requires_grad)
        return layer

    @torch.no_grad()
    def load_dense_weight_(self, weight: Tensor, *, name: Optional[str] = None) -> None:
        """Copy ``weight`` into ``base_weight`` and zero ``lora_B``, so the layer computes ``x @ weight.T + bias``.

        ``lora_A`` keeps its values. The method has the same name and signature as
        :meth:`hypersst.SSTLinear.load_dense_weight_`, so callers can load any method's layer alike.

        Args:
            weight: the dense weight, ``(out_features, in_features)``.
            name: layer name used in error messages (default: the class name).

        Raises:
            ValueError: if ``weight`` has the wrong shape or contains NaN or Inf.
        """
        label = name or type(self).__name__
        expected = (self.out_features, self.in_features)
        if tuple(weight.shape) != expected:
            raise ValueError(f"{label}: expected a weight of shape {expected}, got {tuple(weight.shape)}")
        if not torch.isfinite(weight).all():
            raise ValueError(f"{label}: the weight to load contains NaN or Inf")
        self.base_weight.copy_(weight)
        self.lora_B.zero_()

    def delta_weight(self) -> Tensor:
        """Return the update ``(alpha / r) B A``, ``(out_features, in_features)``, computed in float32 or wider."""
        wide = wide_dtype(self.lora_B.dtype)
        return (self.lora_B.to(wide) @ self.lora_A.to(wide)) * self.scaling

    @property
    def weight(self) -> Tensor:
        """Dense merged weight ``W + (alpha / r) B A``, ``(out_features, in_features)``.

        It is computed on each access and is differentiable with respect to ``lora_A`` and ``lora_B``.
        """
        return (self.base_weight.to(wide_dtype(self.base_weight.dtype)) + self.delta_weight()).to(
            self.base_weight.dtype
        )

    def forward(self, x: Tensor) -> Tensor:
        out = F.linear(x, self.base_weight, self.bias)
        return out + F.linear(F.linear(x, self.lora_A), self.lora_B) * self.scaling

    def to_linear(self) -> nn.Linear:
        """Return a plain ``nn.Linear`` with the merged weight and a copy of the bias.

        Raises:
            RuntimeError: if the merged weight contains NaN or Inf.
        """
        weight = self.weight.detach()
        if not torch.isfinite(weight).all():
            raise RuntimeError(
                f"{type(self).__name__}({self.extra_repr()}): the merged weight contains NaN or Inf; "
                f"check lora_A, lora_B and base_weight for non-finite values before merging"
            )
        return linear_from_weight(weight, self.bias.detach() if self.bias is not None else None)

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, rank={self.rank}, "
            f"alpha={self.alpha:g}, bias={self.bias is not None}"
        )


class ReLoRALinear(LoRALinear):
    r"""LoRA layer whose update is merged into the frozen weight and restarted periodically (ReLoRA*).

    :meth:`merge_and_reset_` folds ``(alpha / r) B A`` into ``base_weight``, sets ``B`` to zero, draws a
    fresh ``A`` and zeroes the optimizer state of ``A`` and ``B``. A sum of several rank-``r`` updates can
    exceed rank ``r``. This is the end-to-end variant (ReLoRA*): training starts from the first step with
    no full-rank warm start. :class:`hypersst.SSTScheduler` calls :meth:`merge_and_reset_` at the end of
    each iteration and applies the per-iteration learning-rate warm-up.

    Arguments, shapes and trainable parameters are those of :class:`LoRALinear`.
    """

    def merge_and_reset_(
        self,
        optimizer: Optional[torch.optim.Optimizer] = None,
        *,
        generator: Optional[torch.Generator] = None,
        reset_step: bool = False,
    ) -> None:
        """Merge the update into ``base_weight`` and restart the LoRA factors, in place.

        The layer's outputs are unchanged up to rounding, because ``B`` is zero after the merge.

        Args:
            optimizer: if given, the moment buffers it keeps for ``lora_A`` and ``lora_B`` are zeroed in
                place (see :func:`~hypersst.lowrank.reset_optimizer_state`).
            generator: source of the fresh ``lora_A`` draw; pass a seeded generator whose state is saved
                with checkpoints so that resumed runs draw the same values.
            reset_step: also reset the optimizer's step counters of ``lora_A`` and ``lora_B``, so that Adam
                restarts exactly instead of applying an old bias correction to zeroed moments
                (default: ``False``).

        Raises:
            RuntimeError: if the merged weight contains NaN or Inf; the layer is left unchanged.
            ValueError: if ``optimizer`` does not hold ``lora_A`` and ``lora_B``.
        """
        if optimizer is not None:
            # Validate before any change, so a wrong optimizer leaves the layer untouched.
            for param in (self.lora_A, self.lora_B):
                reset_optimizer_state(optimizer, param, keys=())
        with torch.no_grad():
            merged = self.base_weight.to(wide_dtype(self.base_weight.dtype)) + self.delta_weight()
            if not torch.isfinite(merged).all():
                raise RuntimeError(
                    f"{type(self).__name__}({self.extra_repr()}): merging produced NaN or Inf; the layer "
                    f"was left unchanged. Lower the learning rate or check the inputs for non-finite values"
                )
            self.base_weight.copy_(merged)
        self.reset_lora_parameters(generator)
        if optimizer is not None:
            reset_optimizer_state(optimizer, self.lora_A, reset_step=reset_step)
            reset_optimizer_state(optimizer, self.lora_B, reset_step=reset_step)
