"""Training and evaluation loops per task, their metrics and their reports.

``hypersst.tasks.hgnn`` (the HyboNet benchmark) needs torch_geometric and the data
loaders, so its names load on first access.
"""

from hypersst.tasks.metrics import EarlyStopping, f1_average, lp_metrics, majority_class_f1, nc_metrics, selection_metric
from hypersst.tasks.reporting import GapClosed, compute_gaps, format_table, gap_closed, summarize, write_results

_HGNN_NAMES = ("HGNN_HYPERPARAMETERS", "HGNNHyperparameters", "default_sst_config", "get_hyperparameters", "run_hgnn")

__all__ = sorted(
    [
        "EarlyStopping",
        "GapClosed",
        "compute_gaps",
        "f1_average",
        "format_table",
        "gap_closed",
        "lp_metrics",
        "majority_class_f1",
        "nc_metrics",
        "selection_metric",
        "summarize",
        "write_results",
        *_HGNN_NAMES,
    ]
)


def __getattr__(name: str):
    if name in _HGNN_NAMES:
        from hypersst.tasks import hgnn

        return getattr(hgnn, name)
    raise AttributeError(f"module 'hypersst.tasks' has no attribute {name!r}")
