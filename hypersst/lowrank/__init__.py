"""Low-rank baselines (LoRA, ReLoRA*, GaLore) and the conversion of models between training methods."""

from hypersst.lowrank.convert import METHODS, LowRankReport, apply_lowrank, convert_linear, make_linear, merge_lowrank
from hypersst.lowrank.galore import make_galore_optimizer
from hypersst.lowrank.lora import LoRALinear, ReLoRALinear
from hypersst.lowrank.optim_state import MOMENT_KEYS, reset_optimizer_state
from hypersst.lowrank.prune import PrunedLayer, PruneReport, prune_singular_values
from hypersst.lowrank.two_factor import TwoFactorLinear

__all__ = [
    "LoRALinear",
    "LowRankReport",
    "METHODS",
    "MOMENT_KEYS",
    "PruneReport",
    "PrunedLayer",
    "ReLoRALinear",
    "TwoFactorLinear",
    "apply_lowrank",
    "convert_linear",
    "make_galore_optimizer",
    "make_linear",
    "merge_lowrank",
    "prune_singular_values",
    "reset_optimizer_state",
]
