import math

import numpy as np
import pytest
import torch

from hypersst.tasks.metrics import EarlyStopping, f1_average, lp_metrics, majority_class_f1, nc_metrics, selection_metric


def test_f1_average_modes():
    assert f1_average(2) == "binary"
    assert f1_average(3) == "micro"
    assert f1_average(7) == "micro"


def test_f1_average_rejects_bad_counts():
    with pytest.raises(ValueError, match="at least 2"):
        f1_average(1)
    with pytest.raises(TypeError, match="must be an int"):
        f1_average(2.0)


def test_nc_micro_f1_equals_accuracy():
    y_true = torch.tensor([0, 1, 2, 2, 1, 0, 2])
    y_pred = torch.tensor([0, 2, 2, 2, 1, 1, 0])
    metrics = nc_metrics(y_true, y_pred, 3)
    assert metrics["accuracy"] == pytest.approx(4 / 7)
    assert metrics["f1"] == pytest.approx(4 / 7)


def test_nc_binary_f1_of_class_one():
    y_true = np.array([1, 1, 0, 0, 0, 1])
    y_pred = np.array([1, 0, 0, 1, 0, 1])
    # class 1: tp = 2, fp = 1, fn = 1, so precision = recall = 2/3
    assert nc_metrics(y_true, y_pred, 2)["f1"] == pytest.approx(2 / 3)


def test_nc_binary_f1_without_positive_predictions_is_zero():
    assert nc_metrics([1, 0, 0], [0, 0, 0], 2)["f1"] == 0.0


def test_nc_metrics_rejects_bad_input():
    with pytest.raises(ValueError, match="same length"):
        nc_metrics([0, 1], [0], 2)
    with pytest.raises(ValueError, match="empty split"):
        nc_metrics([], [], 3)


def test_lp_metrics_perfect_and_reversed():
    perfect = lp_metrics(torch.tensor([0.0, -0.1]), torch.tensor([-1.0, -2.0, -3.0]))
    assert perfect == {"roc_auc": 1.0, "ap": 1.0}
    reversed_ = lp_metrics([-5.0, -6.0], [0.0, -1.0])
    assert reversed_["roc_auc"] == 0.0
    assert reversed_["ap"] < 0.6


def test_lp_metrics_rejects_bad_input():
    with pytest.raises(ValueError, match="positive and negative"):
        lp_metrics([], [1.0])
    with pytest.raises(ValueError, match="non-finite"):
        lp_metrics([float("nan")], [0.0])


def test_selection_metric():
    assert selection_metric("nc", {"f1": 0.7, "accuracy": 0.7}) == 0.7
    assert selection_metric("lp", {"roc_auc": 0.9, "ap": 0.8}) == pytest.approx(0.85)
    with pytest.raises(ValueError, match="'nc' or 'lp'"):
        selection_metric("gc", {})


def test_majority_class_f1():
    y_train = torch.tensor([2, 2, 1, 0, 2])
    y_eval = torch.tensor([2, 1, 2, 0])
    assert majority_class_f1(y_train, y_eval, 3) == pytest.approx(0.5)
    # binary: majority 0 never predicts class 1
    assert majority_class_f1(torch.tensor([0, 0, 1]), torch.tensor([1, 0]), 2) == 0.0
    with pytest.raises(ValueError, match="at least one training label"):
        majority_class_f1(torch.tensor([], dtype=torch.long), y_eval, 3)


def test_early_stopping_strict_improvement():
    stopper = EarlyStopping(patience=2, min_epochs=0)
    assert stopper.update(0, 0.5)
    assert not stopper.update(1, 0.5)  # equal is not an improvement
    assert stopper.best_epoch == 0
    assert not stopper.should_stop(1)
    assert not stopper.update(2, 0.4)
    assert stopper.should_stop(2)
    assert stopper.update(3, 0.6)
    assert stopper.best_epoch == 3
    assert stopper.bad_epochs == 0


def test_early_stopping_respects_min_epochs():
    stopper = EarlyStopping(patience=1, min_epochs=5)
    stopper.update(0, 1.0)
    for epoch in range(1, 6):
        stopper.update(epoch, 0.0)
        assert not stopper.should_stop(epoch)
    stopper.update(6, 0.0)
    assert stopper.should_stop(6)


def test_early_stopping_rejects_bad_values():
    with pytest.raises(ValueError, match="non-negative"):
        EarlyStopping(patience=-1)
    with pytest.raises(TypeError, match="must be an int"):
        EarlyStopping(min_epochs=1.5)
    with pytest.raises(ValueError, match="NaN"):
        EarlyStopping().update(3, math.nan)
