"""Functional kernels of Sparse Spectral Training: sampling, the spectral product and SVD."""

from __future__ import annotations

from typing import Optional, Tuple

import torch
from torch import Tensor

from hypersst._validation import check_sparse_matrix
from hypersst.config import ORDERED_SAMPLINGS, RANDOM_SAMPLINGS

__all__ = [
    "ORDERED_SAMPLINGS",
    "RANDOM_SAMPLINGS",
    "sample_active_indices",
    "sampling_probabilities",
    "spectral_linear",
    "svd_factors",
]


def _check_finite_weights(S: Tensor, name: str) -> None:
    if not torch.isfinite(S).all():
        bad = S[~torch.isfinite(S)][:4].tolist()
        raise ValueError(
            f"{name}: singular values contain NaN or Inf (for example {bad}), so the layer diverged or saw "
            "non-finite inputs. Check the inputs, lower the learning rate or restore the last checkpoint."
        )


def sampling_probabilities(S: Tensor, *, sampling: str = "mixed", name: str = "layer") -> Tensor:
    """Compute the probability of drawing each singular triplet.

    ``"mixed"`` returns ``p_i = (1/k + w_i / sum(w)) / 2``, ``"proportional"`` returns ``w_i / sum(w)``
    and ``"uniform"`` returns ``1/k``, where ``w_i = max(s_i, 0)``: a negative singular value carries no
    weight. When every weight is zero the first two rules fall back to the uniform distribution.

    Args:
        S: singular values, shape ``(k,)``.
        sampling: one of :data:`RANDOM_SAMPLINGS`.
        name: layer name used in error messages.

    Returns:
        A float64 CPU tensor of shape ``(k,)`` that sums to one.

    Raises:
        ValueError: if ``S`` contains NaN or Inf, or ``sampling`` is not a random rule.
    """
    if sampling in ORDERED_SAMPLINGS:
        raise ValueError(
            f"{name}: sampling {sampling!r} chooses triplets without drawing them, so it has no probabilities; "
            f"call sample_active_indices, or pass one of {', '.join(map(repr, RANDOM_SAMPLINGS))}"
        )
    if sampling not in RANDOM_SAMPLINGS:
        raise ValueError(
            f"{name}: sampling must be one of {', '.join(map(repr, RANDOM_SAMPLINGS + ORDERED_SAMPLINGS))}, "
            f"got {sampling!r}"
        )
    _check_finite_weights(S, name)
    weights = S.detach().to(device="cpu", dtype=torch.float64).clamp_min(0.0)
    k = weights.numel()
    total = weights.sum()
    uniform = torch.full_like(weights, 1.0 / k)
    if sampling == "uniform" or total <= 0:
        return uniform
    proportional = weights / total
    if sampling == "proportional":
        return proportional
    return 0.5 * (uniform + proportional)


def sample_active_indices(
    S: Tensor,
    rank: int,
    *,
    sampling: str = "mixed",
    generator: Optional[torch.Generator] = None,
    position: int = 0,
    name: str = "layer",
) -> Tensor:
    """Choose ``rank`` distinct triplet indices to train.

    The random rules (``"mixed"``, ``"proportional"``, ``"uniform"``) draw without replacement with the
    probabilities of :func:`sampling_probabilities`. Indices with zero probability are never drawn while at
    least ``rank`` indices have positive probability. With ``"proportional"`` fewer than ``rank`` singular
    values may be positive. Every positive index is then taken, and the remaining slots are filled
    uniformly at random from the zero-weight indices, so the layer still trains ``rank`` triplets.

    The ordered rules ignore ``generator``. ``"top"`` takes the ``rank`` largest singular values, the lower
    index first among equal ones. ``"sequential"`` takes indices ``position * rank`` onwards, wrapping
    around at ``k``. A re-SVD sorts the triplets by singular value, so with ``position`` counting the
    iterations since the last re-SVD, a round of ``ceil(k / rank)`` iterations trains every triplet, from
    the largest singular value down. When ``rank`` does not divide ``k``, the last iteration of the round
    wraps around and trains the first triplets a second time.

    Args:
        S: singular values, shape ``(k,)``.
        rank: number of indices to choose, ``1 <= rank <= k``.
        sampling: one of :data:`RANDOM_SAMPLINGS` or :data:`ORDERED_SAMPLINGS`.
        generator: CPU generator that makes a random draw reproducible.
        position: the iteration's place in its round, read by ``"sequential"`` only.
        name: layer name used in error messages.

    Returns:
        Sorted ``int64`` tensor of ``rank`` distinct indices, on the device of ``S``.

    Raises:
        TypeError: if ``rank`` is not an int.
        ValueError: on a bad ``rank``, ``position`` or ``sampling``, or non-finite singular values.
    """
    k = S.numel()
    if isinstance(rank, bool) or not isinstance(rank, int):
        raise TypeError(f"{name}: rank must be an int, got {rank!r}")
    if not 1 <= rank <= k:
        raise ValueError(f"{name}: cannot draw rank={rank} triplets from k={k} singular values")
    if sampling in ORDERED_SAMPLINGS:
        _check_finite_weights(S, name)
        if sampling == "top":
            order = torch.sort(S.detach().to(device="cpu", dtype=torch.float64), descending=True, stable=True)
            drawn = order.indices[:rank]
        else:
            if isinstance(position, bool) or not isinstance(position, int) or position < 0:
                raise ValueError(f"{name}: position must be a non-negative int, got {position!r}")
            drawn = (position * rank + torch.arange(rank)) % k
        return torch.sort(drawn).values.to(S.device)
    probs = sampling_probabilities(S, sampling=sampling, name=name)
    positive = torch.nonzero(probs > 0).flatten()
    if positive.numel() >= rank:
        drawn = torch.multinomial(probs, rank, replacement=False, generator=generator)
    else:
        zero = torch.nonzero(probs <= 0).flatten()
        order = torch.randperm(zero.numel(), generator=generator)
        drawn = torch.cat([positive, zero[order[: rank - positive.numel()]]])
    return torch.sort(drawn).values.to(S.device)


class _SpectralLinearFunction(torch.autograd.Function):
    """``y = x Vh^T diag(S) U^T`` with gradients only for ``S`` and the active triplets."""

    @staticmethod
    def forward(ctx, x, U_buffer, Vh_buffer, Ut_active, Vh_active, S, indices, enhanced):
        U = U_buffer.index_copy(1, indices, Ut_active.detach().t())
        Vh = Vh_buffer.index_copy(0, indices, Vh_active.detach())
        # A sparse x arrives as a coalesced 2-D COO matrix (see spectral_linear).
        x2 = x if x.layout == torch.sparse_coo else x.reshape(-1, x.shape[-1])
        projected = x2 @ Vh.t()  # (B, k): coordinates of x in the right singular basis
        scaled = projected * S
        out = scaled @ U.t()
        ctx.save_for_backward(x2, U, Vh, S, projected, indices)
        ctx.enhanced = enhanced
        ctx.input_shape = x.shape
        return out.reshape(*x.shape[:-1], U.shape[0])

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_out):
        x2, U, Vh, S, projected, indices = ctx.saved_tensors
        grad2 = grad_out.reshape(-1, U.shape[0])
        grad_left = grad2 @ U  # (B, k): row b is U^T dL/dy_b
        grad_x = grad_S = grad_Ut = grad_Vh = None
        if ctx.needs_input_grad[5]:
            grad_S = (grad_left * projected).sum(0)
        if ctx.needs_input_grad[0]:
            grad_projected = grad_left * S
            if x2.layout == torch.sparse_coo:
                # Only the stored entries of a sparse input are variables, as with torch.sparse.mm: entry (b, j)
                # gets row b of grad_projected dotted with column j of Vh, so no dense (B, in) matrix is formed.
                row, col = x2.indices()
                values = (grad_projected.index_select(0, row) * Vh.index_select(1, col).t()).sum(-1)
                # The indices are those of the coalesced input, so torch's invariant check would only repeat it.
                grad_x = torch.sparse_coo_tensor(
                    x2.indices(), values, x2.shape, is_coalesced=True, check_invariants=False
                )
            else:
                grad_x = (grad_projected @ Vh).reshape(ctx.input_shape)
        if ctx.needs_input_grad[3]:
            # Column i of dL/dU is G v_i s_i with G = dL/dW; the enhanced rule drops the factor s_i.
            right = projected.index_select(1, indices)
            if not ctx.enhanced:
                right = right * S.index_select(0, indices)
            grad_Ut = right.t() @ grad2
        if ctx.needs_input_grad[4]:
            left = grad_left.index_select(1, indices)
            if not ctx.enhanced:
                left = left * S.index_select(0, indices)
            # (x2^T left)^T keeps a sparse x2 as the left factor of the product, the form torch.sparse.mm takes.
            grad_Vh = torch.sparse.mm(x2.t(), left).t() if x2.layout == torch.sparse_coo else left.t() @ x2
        return grad_x, None, None, grad_Ut, grad_Vh, grad_S, None, None


def spectral_linear(
    x: Tensor,
    U_buffer: Tensor,
    Vh_buffer: Tensor,
    Ut_active: Tensor,
    Vh_active: Tensor,
    S: Tensor,
    indices: Tensor,
    *,
    enhanced: bool = True,
) -> Tensor:
    """Apply ``W = U diag(S) Vh`` to ``x`` with the active triplets taken from their parameters.

    The gradient of ``S`` is the true gradient ``diag(U^T G V)``. The active vectors receive
    ``G v_i`` and ``G^T u_i`` when ``enhanced`` is set, and ``s_i G v_i``, ``s_i G^T u_i`` (the true
    gradient) otherwise. The frozen columns of the buffers receive no gradient and cost no backward work.

    ``x`` may be a sparse COO or CSR matrix of shape ``(B, in)``. The products then run as sparse-dense
    matrix products and never densify ``x``; outputs and parameter gradients equal those of ``x.to_dense()``
    up to rounding. If a sparse ``x`` requires grad, its gradient holds the stored entries only (the
    convention of ``torch.sparse.mm``), in the layout of ``x``.

    Shapes:
        - x: ``(..., in)``, or ``(B, in)`` when sparse; U_buffer: ``(out, k)``; Vh_buffer: ``(k, in)``;
          S: ``(k,)``
        - Ut_active: ``(r, out)`` (active columns of U, transposed); Vh_active: ``(r, in)``
        - indices: ``(r,)`` positions of the active triplets; output: ``(..., out)``

    Raises:
        TypeError: if ``x`` is sparse in a layout other than COO or CSR.
        ValueError: if a sparse ``x`` is not a 2-D matrix with scalar entries.
    """
    if x.layout != torch.strided:
        check_sparse_matrix(x, "spectral_linear")
        # The autograd Function takes one sparse layout. The conversion keeps the autograd history of x.
        x = x.to_sparse_coo().coalesce()
    return _SpectralLinearFunction.apply(x, U_buffer, Vh_buffer, Ut_active, Vh_active, S, indices, enhanced)



def svd_factors(weight: Tensor, *, name: str = "layer") -> Tuple[Tensor, Tensor, Tensor]:
    """Compute the thin SVD ``weight = U diag(S) Vh`` in float32 or wider and cast back.

    Raises:
        ValueError: if ``weight`` contains NaN or Inf.
        RuntimeError: if the SVD does not converge or returns non-finite factors.
    """
    if not torch.isfinite(weight).all():
        raise ValueError(
            f"{name}: weight contains NaN or Inf, so it cannot be factorized; "
            "restore a finite checkpoint or lower the learning rate."
        )
    compute_dtype = torch.promote_types(weight.dtype, torch.float32)
    try:
        U, S, Vh = torch.linalg.svd(weight.to(compute_dtype), full_matrices=False)
    except RuntimeError as error:  # torch raises torch.linalg.LinAlgError, a RuntimeError subclass
        raise RuntimeError(f"{name}: SVD of the {tuple(weight.shape)} weight failed: {error}") from error
    if not (torch.isfinite(U).all() and torch.isfinite(S).all() and torch.isfinite(Vh).all()):
        raise RuntimeError(f"{name}: SVD of the {tuple(weight.shape)} weight returned non-finite factors")
    return U.to(weight.dtype), S.to(weight.dtype), Vh.to(weight.dtype)
