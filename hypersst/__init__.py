"""hypersst: Sparse Spectral Training for hyperbolic and Euclidean neural networks.

Public names are imported on first use, so ``import hypersst`` stays light and optional
dependencies (torch_geometric, galore_torch) load only when a feature needs them.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "HyperSSTLinear": "hypersst.nn",
    "HyperSSTWarning": "hypersst.warnings",
    "LoRALinear": "hypersst.lowrank",
    "LorentzLinear": "hypersst.nn",
    "LowRankReport": "hypersst.lowrank",
    "PoincareLinear": "hypersst.nn",
    "ReLoRALinear": "hypersst.lowrank",
    "SSTConfig": "hypersst.config",
    "SSTLinear": "hypersst.spectral",
    "SSTScheduler": "hypersst.schedule",
    "apply_lowrank": "hypersst.lowrank",
    "load_checkpoint": "hypersst.checkpoint",
    "make_galore_optimizer": "hypersst.lowrank",
    "merge_lowrank": "hypersst.lowrank",
    "prune_singular_values": "hypersst.lowrank",
    "save_checkpoint": "hypersst.checkpoint",
    "singular_value_parameters": "hypersst.spectral",
    "singular_vector_parameters": "hypersst.spectral",
}

__all__ = sorted(_EXPORTS) + ["__version__"]


def __getattr__(name: str) -> Any:
    module_name = _EXPORTS.get(name)
    if module_name is None:
        raise AttributeError(f"module 'hypersst' has no attribute {name!r}")
    value = getattr(importlib.import_module(module_name), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_EXPORTS))
