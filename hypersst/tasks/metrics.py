"""Evaluation metrics, trivial baselines and early stopping for the HGNN benchmark.

Node classification (NC) is scored by F1: micro-averaged when there are more than two
classes (where it equals accuracy) and binary F1 of class 1 otherwise. Link prediction
(LP) is scored by ROC-AUC and average precision over the positive edges followed by the
negative edges. Model selection uses val F1 (NC) or mean(ROC-AUC, AP) (LP).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch
from sklearn.metrics import average_precision_score, f1_score, roc_auc_score

__all__ = [
    "EarlyStopping",
    "f1_average",
    "lp_metrics",
    "majority_class_f1",
    "nc_metrics",
    "selection_metric",
]


def _to_numpy(values) -> np.ndarray:
    if isinstance(values, torch.Tensor):
        return values.detach().cpu().numpy()
    return np.asarray(values)


def f1_average(num_classes: int) -> str:
    """Return the sklearn ``average`` mode for F1: ``"micro"`` above 2 classes, else ``"binary"``.

    Args:
        num_classes: number of classes of the task, at least 2.

    Returns:
        ``"micro"`` or ``"binary"``.
    """
    if not isinstance(num_classes, int) or isinstance(num_classes, bool):
        raise TypeError(f"num_classes must be an int, got {type(num_classes).__name__}")
    if num_classes < 2:
        raise ValueError(f"num_classes must be at least 2 for F1, got {num_classes}")
    return "micro" if num_classes > 2 else "binary"


def nc_metrics(y_true, y_pred, num_classes: int) -> dict[str, float]:
    """Compute node-classification F1 and accuracy.

    Args:
        y_true: true labels, shape ``(n,)``.
        y_pred: predicted labels, shape ``(n,)``.
        num_classes: number of classes; selects micro F1 (> 2) or binary F1 of class 1 (= 2).

    Returns:
        ``{"f1": ..., "accuracy": ...}`` as floats in [0, 1].
    """
    y_true = _to_numpy(y_true).reshape(-1)
    y_pred = _to_numpy(y_pred).reshape(-1)
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y_true and y_pred must have the same length, got {y_true.shape[0]} and {y_pred.shape[0]}")
    if y_true.size == 0:
        raise ValueError("nc_metrics needs at least one labelled node, got an empty split")
    average = f1_average(num_classes)
    # zero_division=0: a binary split where class 1 is never predicted has F1 0, not a warning.
    f1 = f1_score(y_true, y_pred, average=average, zero_division=0)
    return {"f1": float(f1), "accuracy": float(np.mean(y_true == y_pred))}


def lp_metrics(pos_scores, neg_scores) -> dict[str, float]:
    """Compute link-prediction ROC-AUC and average precision.

    Args:
        pos_scores: scores of the positive edges, shape ``(p,)``; higher means more likely.
        neg_scores: scores of the negative edges, shape ``(q,)``.

    Returns:
        ``{"roc_auc": ..., "ap": ...}`` as floats in [0, 1].
    """
    pos = _to_numpy(pos_scores).reshape(-1).astype(np.float64)
    neg = _to_numpy(neg_scores).reshape(-1).astype(np.float64)
    if pos.size == 0 or neg.size == 0:
        raise ValueError(f"lp_metrics needs positive and negative edges, got {pos.size} positive and {neg.size} negative")
    scores = np.concatenate([pos, neg])
    if not np.all(np.isfinite(scores)):
        raise ValueError("lp_metrics got non-finite edge scores; the model output contains NaN or Inf")
    labels = np.concatenate([np.ones(pos.size), np.zeros(neg.size)])
    return {"roc_auc": float(roc_auc_score(labels, scores)), "ap": float(average_precision_score(labels, scores))}


def selection_metric(task: str, metrics: dict[str, float]) -> float:
    """Return the validation quantity used for model selection.

    Args:
        task: ``"nc"`` (F1) or ``"lp"`` (mean of ROC-AUC and AP).
        metrics: output of :func:`nc_metrics` or :func:`lp_metrics`.

    Returns:
        The selection value, higher is better.
    """
    if task == "nc":
        return metrics["f1"]
    if task == "lp":
        return 0.5 * (metrics["roc_auc"] + metrics["ap"])
    raise ValueError(f"task must be 'nc' or 'lp', got {task!r}")


def majority_class_f1(y_train, y_eval, num_classes: int) -> float:
    """Return the F1 on ``y_eval`` of always predicting the most frequent class of ``y_train``.

    This is the trivial NC baseline a trained model must beat. For binary tasks the
    majority class is usually 0, whose binary F1 (of class 1) is 0.

    Args:
        y_train: training labels, shape ``(n_train,)``.
        y_eval: labels of the evaluated split, shape ``(n_eval,)``.
        num_classes: number of classes.

    Returns:
        The baseline F1.
    """
    y_train = _to_numpy(y_train).reshape(-1)
    if y_train.size == 0:
        raise ValueError("majority_class_f1 needs at least one training label, got none")
    majority = np.bincount(y_train, minlength=num_classes).argmax()
    y_eval = _to_numpy(y_eval).reshape(-1)
    return nc_metrics(y_eval, np.full_like(y_eval, majority), num_classes)["f1"]


@dataclass
class EarlyStopping:
    """Best-epoch tracking with patience, as HGCN and HyboNet train.

    A new best is recorded only when the value strictly improves. Training stops once
    ``patience`` consecutive epochs bring no improvement and more than ``min_epochs``
    epochs have run.

    Args:
        patience: number of non-improving epochs that ends training (default: 500).
        min_epochs: training never stops at or before this epoch (default: 100).
    """

    patience: int = 500
    min_epochs: int = 100
    best_value: float = field(default=-math.inf, init=False)
    best_epoch: int = field(default=-1, init=False)
    bad_epochs: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        for name in ("patience", "min_epochs"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool):
                raise TypeError(f"EarlyStopping {name} must be an int, got {type(value).__name__}")
            if value < 0:
                raise ValueError(f"EarlyStopping {name} must be non-negative, got {value}")

    def update(self, epoch: int, value: float) -> bool:
        """Record the validation value of ``epoch``.

        Args:
            epoch: epoch number, counted from 0.
            value: validation metric, higher is better.

        Returns:
            True if ``value`` is a new best.
        """
        if math.isnan(value):
            raise ValueError(f"EarlyStopping got a NaN validation value at epoch {epoch}")
        if value > self.best_value:
            self.best_value = float(value)
            self.best_epoch = int(epoch)
            self.bad_epochs = 0
            return True
        self.bad_epochs += 1
        return False

    def should_stop(self, epoch: int) -> bool:
        """Return True when patience is used up and ``epoch`` is past ``min_epochs``."""
        return self.bad_epochs >= self.patience and epoch > self.min_epochs
