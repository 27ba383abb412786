"""The sparse spectral linear layer."""

from __future__ import annotations

import math
from typing import Optional

import geoopt
import torch
from torch import Tensor, nn

from hypersst._validation import check_rank, linear_from_weight
from hypersst.spectral.functional import spectral_linear, svd_factors

__all__ = ["SSTLinear", "singular_vector_parameters"]

_GRADIENTS = ("enhanced", "default")
_GEOMETRIES = ("euclidean", "sphere")


class SSTLinear(nn.Module):
    r"""Linear layer trained by Sparse Spectral Training (Zhao et al., ICML 2025, arXiv 2405.15481).

    The weight is held as its thin SVD :math:`W = U \operatorname{diag}(S) V_h` with
    ``k = min(in_features, out_features)`` triplets. All ``k`` singular values are trainable. Only ``rank``
    triplets are *active*: their columns of ``U`` and rows of ``Vh`` are parameters with gradients and
    optimizer state, while the other ``k - rank`` sit in frozen buffers. :class:`hypersst.SSTScheduler`
    resamples the active set, swaps optimizer state and re-factorizes the weight periodically.

    Before the scheduler's first draw, the active triplets are the ``rank`` largest.

    Args:
        in_features: size of each input sample.
        out_features: size of each output sample.
        rank: number of active triplets ``r``.
        bias: if ``True``, adds a learnable bias.
        gradient: ``"enhanced"`` (the active vectors get ``G v_i`` and ``G^T u_i``) or ``"default"``
            (the true gradient, scaled by ``s_i``).
        vector_geometry: ``"euclidean"`` for plain parameters renormalized after each step, or
            ``"sphere"`` for ``geoopt.ManifoldParameter`` rows on ``geoopt.Sphere``.

    Shapes:
        - input: ``(..., in_features)``; output: ``(..., out_features)``
        - ``U``: ``(out_features, k)``, ``S``: ``(k,)``, ``Vh``: ``(k, in_features)``
        - parameters ``Ut_active``: ``(r, out_features)`` (active columns of ``U``, transposed so that each
          row is one unit vector), ``Vh_active``: ``(r, in_features)``
        - buffer ``active_indices``: ``(r,)``, the triplet of each row of ``Ut_active`` and ``Vh_active``. It
          follows the rows, so it is not sorted: a triplet that stays active keeps its row.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        rank: int,
        bias: bool = True,
        *,
        gradient: str = "enhanced",
        vector_geometry: str = "euclidean",
        device=None,
        dtype=None,
    ) -> None:
        super().__init__()
        for label, value in (("in_features", in_features), ("out_features", out_features)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"SSTLinear: {label} must be a positive int, got {value!r}")
        check_rank(rank, in_features, out_features, "SSTLinear")
        if gradient not in _GRADIENTS:
            raise ValueError(f"SSTLinear: gradient must be one of {_GRADIENTS}, got {gradient!r}")
        if vector_geometry not in _GEOMETRIES:
            raise ValueError(f"SSTLinear: vector_geometry must be one of {_GEOMETRIES}, got {vector_geometry!r}")
        factory = {"device": device, "dtype": dtype}
        self.in_features = in_features
        self.out_features = out_features
        self.rank = rank
        self.num_triplets = min(in_features, out_features)
        self.gradient = gradient
        self.vector_geometry = vector_geometry
        k = self.num_triplets

        self.register_buffer("U_buffer", torch.empty(out_features, k, **factory))
        self.register_buffer("Vh_buffer", torch.empty(k, in_features, **factory))
        self.register_buffer("active_indices", torch.arange(rank, device=device))
        self.S = nn.Parameter(torch.empty(k, **factory))
        self.Ut_active = self._vector_parameter(torch.empty(rank, out_features, **factory))
        self.Vh_active = self._vector_parameter(torch.empty(rank, in_features, **factory))
        if bias:
            self.bias = nn.Parameter(torch.empty(out_features, **factory))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def _vector_parameter(self, data: Tensor) -> nn.Parameter:
        if self.vector_geometry == "sphere":
            return geoopt.ManifoldParameter(data, manifold=geoopt.Sphere())
        return nn.Parameter(data)

    # ------------------------------------------------------------------ construction
    def reset_parameters(self) -> None:
        """Draw a weight and bias as ``nn.Linear`` does, then factorize the weight."""
        weight = torch.empty(self.out_features, self.in_features, device=self.S.device, dtype=self.S.dtype)
        nn.init.kaiming_uniform_(weight, a=math.sqrt(5))
        self.load_dense_weight_(weight)
        if self.bias is not None:
            bound = 1.0 / math.sqrt(self.in_features)
            with torch.no_grad():
                self.bias.uniform_(-bound, bound)

    @torch.no_grad()
    def load_dense_weight_(self, weight: Tensor, *, name: str = "SSTLinear") -> None:
        """Factorize ``weight`` by SVD into this layer; the active set becomes the ``rank`` largest triplets."""
        expected = (self.out_features, self.in_features)
        if tuple(weight.shape) != expected:
            raise ValueError(f"{name}: expected a weight of shape {expected}, got {tuple(weight.shape)}")
        U, S, Vh = svd_factors(weight.detach().to(self.S.dtype), name=name)
        self.U_buffer.copy_(U)
        self.Vh_buffer.copy_(Vh)
        self.S.copy_(S)
        self.active_indices.copy_(torch.arange(self.rank, device=self.active_indices.device))
        self._load_active_from_buffers()

    @classmethod
    def from_linear(cls, linear: nn.Linear, rank: int, *, name: Optional[str] = None, **kwargs) -> "SSTLinear":
        """Build an SST layer with the same outputs as ``linear`` (zero distortion).

        Args:
            linear: the layer to convert; its weight and bias are copied, not shared.
            rank: number of active triplets.
            name: name used in error messages (defaults to the class name).
            **kwargs: ``gradient`` and ``vector_geometry``.
        """
        label = name or "SSTLinear.from_linear"
        if not isinstance(linear, nn.Linear):
            raise TypeError(f"{label}: expected an nn.Linear, got {type(linear).__name__}")
        check_rank(rank, linear.in_features, linear.out_features, label)
        layer = cls(
            linear.in_features,
            linear.out_features,
            rank,
            bias=linear.bias is not None,
            device=linear.weight.device,
            dtype=linear.weight.dtype,
            **kwargs,
        )
        layer.load_dense_weight_(linear.weight, name=label)
        if linear.bias is not None:
            with torch.no_grad():
                layer.bias.copy_(linear.bias)
        return layer

    # ------------------------------------------------------------------ views
    @property
    def U(self) -> Tensor:
        """Left singular vectors, ``(out_features, k)``, active columns included (a detached copy)."""
        return self.U_buffer.index_copy(1, self.active_indices, self.Ut_active.detach().t())

    @property
    def Vh(self) -> Tensor:
        """Right singular vectors, ``(k, in_features)``, active rows included (a detached copy)."""
        return self.Vh_buffer.index_copy(0, self.active_indices, self.Vh_active.detach())

    @property
    def weight(self) -> Tensor:
        """Dense reconstruction ``U diag(S) Vh``, ``(out_features, in_features)``, detached."""
        return (self.U * self.S.detach()) @ self.Vh

    def forward(self, x: Tensor) -> Tensor:
        if x.shape[-1] != self.in_features:
            raise ValueError(
                f"SSTLinear: expected inputs with last dimension {self.in_features}, got shape {tuple(x.shape)}"
            )
        out = spectral_linear(
            x,
            self.U_buffer,
            self.Vh_buffer,
            self.Ut_active,
            self.Vh_active,
            self.S,
            self.active_indices,
            enhanced=self.gradient == "enhanced",
        )
        if self.bias is not None:
            out = out + self.bias
        return out

    def to_linear(self) -> nn.Linear:
        """Return a plain ``nn.Linear`` with the same outputs."""
        return linear_from_weight(self.weight, self.bias.detach() if self.bias is not None else None)

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, rank={self.rank}, "
            f"k={self.num_triplets}, bias={self.bias is not None}, gradient={self.gradient!r}, "
            f"vector_geometry={self.vector_geometry!r}"
        )

    # ------------------------------------------------------------------ training-time updates
    @torch.no_grad()
    def _load_active_from_buffers(self) -> None:
        self.Ut_active.copy_(self.U_buffer.index_select(1, self.active_indices).t())
        self.Vh_active.copy_(self.Vh_buffer.index_select(0, self.active_indices))

    @torch.no_grad()
    def _store_active_to_buffers(self) -> None:
        self.U_buffer.index_copy_(1, self.active_indices, self.Ut_active.t())
        self.Vh_buffer.index_copy_(0, self.active_indices, self.Vh_active)

    @torch.no_grad()
    def post_step_(self) -> None:
        """Clamp the singular values at zero and rescale the active vectors to unit norm.

        Called by the scheduler after every optimizer step. A vector whose norm is zero stays zero, because
        unit norm cannot be restored without inventing a direction; the next :meth:`check_finite_` (at every
        swap and re-SVD) reports it.
        """
        self.S.clamp_(min=0.0)
        for vectors in (self.Ut_active, self.Vh_active):
            norms = vectors.norm(dim=1, keepdim=True)
            vectors.copy_(torch.where(norms > 0, vectors / norms, vectors))

    @torch.no_grad()
    def check_finite_(self, name: str = "SSTLinear") -> None:
        """Raise ``RuntimeError`` naming the layer if a factor contains NaN or Inf or an active vector is zero."""
        for label, tensor in (("S", self.S), ("U", self.Ut_active), ("Vh", self.Vh_active)):
            if not torch.isfinite(tensor).all():
                raise RuntimeError(
                    f"{name}: {label} contains NaN or Inf after training steps, so the layer diverged or saw "
                    "non-finite inputs. Check the inputs, lower the learning rate or restore a checkpoint."
                )
        for label, vectors in (("U", self.Ut_active), ("Vh", self.Vh_active)):
            zero = torch.nonzero(vectors.norm(dim=1) == 0).flatten()
            if zero.numel():
                raise RuntimeError(
                    f"{name}: active {label} vectors of triplets {self.active_indices[zero].tolist()} have "
                    "zero norm, so they carry no direction. Lower the learning rate or restore a checkpoint."
                )

    @torch.no_grad()
    def swap_(self, indices: Tensor, *, name: str = "SSTLinear") -> Tensor:
        """Make ``indices`` the active triplets, keeping the slots of triplets that stay active.

        The trained active vectors are written back to the frozen buffers first. A triplet that is active
        before and after keeps its slot, so its optimizer state stays valid.

        Returns:
            The slots (rows of ``Ut_active`` and ``Vh_active``) that now hold a different triplet; their
            optimizer state must be reset.
        """
        indices = indices.to(device=self.active_indices.device, dtype=torch.long)
        if indices.numel() != self.rank or torch.unique(indices).numel() != self.rank:
            raise ValueError(f"{name}: expected {self.rank} distinct indices, got {indices.tolist()}")
        if indices.min() < 0 or indices.max() >= self.num_triplets:
            raise ValueError(f"{name}: indices must lie in [0, {self.num_triplets}), got {indices.tolist()}")
        self.check_finite_(name)
        self._store_active_to_buffers()
        old = self.active_indices
        stays = torch.isin(old, indices)
        incoming = indices[~torch.isin(indices, old)]
        changed_slots = torch.nonzero(~stays).flatten()
        new_active = old.clone()
        new_active[changed_slots] = incoming
        self.active_indices.copy_(new_active)
        self._load_active_from_buffers()
        return changed_slots

    @torch.no_grad()
    def resvd_(self, *, name: str = "SSTLinear") -> None:
        """Re-factorize ``U diag(S) Vh`` by SVD, which restores orthonormal factors.

        The dense weight is unchanged up to rounding. Triplets are reordered by decreasing singular value,
        so the optimizer state of ``S`` and of the active vectors no longer matches and must be reset.
        """
        self.check_finite_(name)
        self._store_active_to_buffers()
        weight = (self.U_buffer * self.S) @ self.Vh_buffer
        U, S, Vh = svd_factors(weight, name=name)
        self.U_buffer.copy_(U)
        self.Vh_buffer.copy_(Vh)
        self.S.copy_(S)
        self._load_active_from_buffers()

    def trainable_vector_parameters(self):
        """Return the parameters whose rows are the active singular vectors."""
        return (self.Ut_active, self.Vh_active)


def singular_vector_parameters(module: nn.Module) -> list[nn.Parameter]:
    """Return the active singular-vector parameters of every :class:`SSTLinear` in ``module``.

    These are the rows of ``Ut_active`` and ``Vh_active``: unit vectors, renormalized after each step.
    Put them in their own optimizer parameter group to train them at a learning rate of their own or to
    exempt them from weight decay, which renormalization would undo anyway. The singular values ``S``
    and biases are not included.

    Args:
        module: a model or a single layer.

    Returns:
        The parameters in module order, two per SST layer, each listed once.

    Raises:
        ValueError: if ``module`` contains no :class:`SSTLinear`.
    """
    return _sst_parameters(module, "singular_vector_parameters", lambda layer: layer.trainable_vector_parameters())


def singular_value_parameters(module: nn.Module) -> list[nn.Parameter]:
    """Return the singular values ``S`` of every :class:`SSTLinear` in ``module``.

    Put them in their own optimizer parameter group to train them at a learning rate of their own. With
    ``SSTConfig(warmup_scope="reset")``, a group of their own also keeps the warm-up after a re-SVD from
    reaching other parameters.

    Args:
        module: a model or a single layer.

    Returns:
        The parameters in module order, one per SST layer, each listed once.

    Raises:
        ValueError: if ``module`` contains no :class:`SSTLinear`.
    """
    return _sst_parameters(module, "singular_value_parameters", lambda layer: (layer.S,))


def _sst_parameters(module: nn.Module, caller: str, select) -> list[nn.Parameter]:
    """Collect ``select(layer)`` over the SST layers of ``module``, raising if it has none."""
    # modules() yields a layer shared by several parents only once, so no parameter repeats.
    found: list[nn.Parameter] = []
    for layer in module.modules():
        if isinstance(layer, SSTLinear):
            found.extend(select(layer))
    if not found:
        raise ValueError(
            f"{caller}: {type(module).__name__} contains no SSTLinear layer; convert it first "
            "with hypersst.apply_lowrank(model, 'sst', rank)"
        )
    return found
