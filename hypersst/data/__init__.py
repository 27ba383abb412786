"""Graph data for the HGNN benchmark: real loaders, splits and a synthetic hierarchy."""

from hypersst.data.graphs import load_hgnn_dataset
from hypersst.data.splits import sample_train_negatives
from hypersst.data.synthetic import make_synthetic_hierarchy

__all__ = [
    "load_hgnn_dataset",
    "make_synthetic_hierarchy",
    "sample_train_negatives",
]
