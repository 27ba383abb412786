"""Hyperbolic linear layers: Lorentz, Poincaré and their Sparse Spectral Training versions."""

from .lorentz import LorentzLinear, lorentz_output
from .poincare import PoincareLinear
from .sst import HyperSSTLinear

__all__ = ["HyperSSTLinear", "LorentzLinear", "PoincareLinear", "lorentz_output"]
