"""Sparse spectral layers and their functional kernels."""

from hypersst.spectral.functional import (
    sample_active_indices,
    sampling_probabilities,
    spectral_linear,
    svd_factors,
)
from hypersst.spectral.layer import SSTLinear

__all__ = [
    "SSTLinear",
    "sample_active_indices",
    "sampling_probabilities",
    "spectral_linear",
    "svd_factors",
]
