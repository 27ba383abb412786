"""A multilayer perceptron for image classification."""

from __future__ import annotations

from torch import Tensor, nn

__all__ = ["MLP"]


class MLP(nn.Module):
    """``in -> hidden -> ... -> hidden -> classes`` with ReLU between layers.

    The hidden layers are named ``hidden.0``, ``hidden.1``, ... and the output layer ``head``, so that
    :func:`hypersst.apply_lowrank` can exclude the head by name.

    Args:
        in_features: input width.
        hidden_features: width ``d`` of every hidden layer.
        num_classes: number of output classes.
        depth: number of hidden layers (at least 1).
    """

    def __init__(self, in_features: int, hidden_features: int, num_classes: int, *, depth: int = 3) -> None:
        super().__init__()
        if depth < 1:
            raise ValueError(f"MLP depth must be at least 1, got {depth}")
        widths = [in_features] + [hidden_features] * depth
        self.hidden = nn.ModuleList(nn.Linear(a, b) for a, b in zip(widths[:-1], widths[1:]))
        self.head = nn.Linear(hidden_features, num_classes)
        self.activation = nn.ReLU()

    def forward(self, x: Tensor) -> Tensor:
        for layer in self.hidden:
            x = self.activation(layer(x))
        return self.head(x)
