"""Model zoo: HyboNet graph networks and their Poincaré counterpart."""

from hypersst.models.hybonet import (
    HyboNetEncoder,
    HyboNetLP,
    HyboNetNC,
    LorentzAggregation,
    LorentzGraphConvolution,
    PoincareEncoder,
    PoincareGCNLP,
    PoincareGCNNC,
    TangentAggregation,
    lorentz_gram,
    lorentz_pair_inner,
    lp_margin_loss,
    nc_margin_loss,
    normalized_adjacency,
)

__all__ = [
    "HyboNetEncoder",
    "HyboNetLP",
    "HyboNetNC",
    "LorentzAggregation",
    "LorentzGraphConvolution",
    "PoincareEncoder",
    "PoincareGCNLP",
    "PoincareGCNNC",
    "TangentAggregation",
    "lorentz_gram",
    "lorentz_pair_inner",
    "lp_margin_loss",
    "nc_margin_loss",
    "normalized_adjacency",
]
