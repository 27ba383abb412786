"""Sparse spectral layers and their functional kernels."""

from hypersst.spectral.functional import (
    sample_active_indices,
    sampling_probabilities,
    spectral_linear,
    svd_factors,
)
from hypersst.spectral.layer import SSTLinear, singular_value_parameters, singular_vector_parameters

__all__ = [
    "SSTLinear",
    "sample_active_indices",
    "sampling_probabilities",
    "singular_value_parameters",
    "singular_vector_parameters",
    "spectral_linear",
    "svd_factors",
]
