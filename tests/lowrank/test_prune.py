"""Tests for prune_singular_values."""

from collections import OrderedDict

import pytest
import torch
from torch import nn

from hypersst.lowrank import PruneReport, TwoFactorLinear, apply_lowrank, prune_singular_values
from hypersst.spectral import SSTLinear

SEEDS = (0, 1, 2)
ATOL = {torch.float32: 2e-5, torch.float64: 1e-11}
RTOL = {torch.float32: 1e-4, torch.float64: 1e-10}


def _close(actual, expected, dtype):
    torch.testing.assert_close(actual, expected, atol=ATOL[dtype], rtol=RTOL[dtype])


def _model(dtype):
    return nn.Sequential(
        OrderedDict(
            first=nn.Linear(10, 7, dtype=dtype),
            act=nn.Tanh(),
            second=nn.Linear(7, 12, bias=False, dtype=dtype),
            head=nn.Linear(12, 3, dtype=dtype),
        )
    )


def _weight_with_spectrum(singular_values, out_features, in_features, seed, dtype):
    generator = torch.Generator().manual_seed(seed)
    U, _ = torch.linalg.qr(torch.randn(out_features, len(singular_values), generator=generator, dtype=torch.float64))
    V, _ = torch.linalg.qr(torch.randn(in_features, len(singular_values), generator=generator, dtype=torch.float64))
    S = torch.tensor(singular_values, dtype=torch.float64)
    return ((U * S) @ V.T).to(dtype)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("method", ["full", "lora", "relora", "sst"])
def test_full_keep_count_reproduces_outputs(method, seed, dtype):
    torch.manual_seed(seed)
    model = _model(dtype)
    apply_lowrank(model, method, 2)
    for module in model.modules():
        if hasattr(module, "lora_B"):
            with torch.no_grad():
                module.lora_B.normal_()
    x = torch.randn(5, 10, dtype=dtype)
    expected = model(x).detach()

    report = prune_singular_values(model, keep_count=12)

    # Keeping every triplet gives factors larger than the dense weights, so the layers stay dense.
    for name in ("first", "second", "head"):
        assert type(getattr(model, name)) is nn.Linear, name
    assert [layer.kept for layer in report.layers] == [7, 7, 3]
    assert [layer.factored for layer in report.layers] == [False, False, False]
    assert all(layer.energy_kept == pytest.approx(1.0) for layer in report.layers)
    assert report.weight_entries_after == report.weight_entries_before
    assert model.second.bias is None
    assert model.first.weight.dtype == dtype
    _close(model(x), expected, dtype)


def test_pruning_never_enlarges_a_layer():
    model = nn.Sequential(OrderedDict(wide=nn.Linear(20, 32), narrow=nn.Linear(32, 32)))
    report = prune_singular_values(model, keep_count=14)
    # 14 * (20 + 32) = 728 >= 640 entries, so "wide" stays dense; 14 * 64 = 896 < 1024, so "narrow" is factored.
    assert type(model.wide) is nn.Linear
    assert isinstance(model.narrow, TwoFactorLinear)
    assert [(layer.factored, layer.weight_entries_after) for layer in report.layers] == [(False, 640), (True, 896)]
    assert torch.linalg.matrix_rank(model.wide.weight.detach()) == 14


@pytest.mark.parametrize("seed", SEEDS)
def test_keep_count_gives_best_rank_approximation(seed, dtype):
    torch.manual_seed(seed)
    linear = nn.Linear(9, 8, dtype=dtype)
    model = nn.Sequential(linear)
    weight = linear.weight.detach().clone()
    U, S, Vh = torch.linalg.svd(weight.double())
    best = ((U[:, :3] * S[:3]) @ Vh[:3]).to(dtype)

    report = prune_singular_values(model, keep_count=3)

    layer = model[0]
    assert layer.left.shape == (8, 3)
    assert layer.right.shape == (3, 9)
    _close(layer.weight, best, dtype)
    expected_energy = float((S[:3] ** 2).sum() / (S**2).sum())
    assert report.layers[0].energy_kept == pytest.approx(expected_energy, rel=1e-5)
    assert report.layers[0].weight_entries_after == 3 * (8 + 9)


@pytest.mark.parametrize(
    "keep_energy, expected",
    [(0.5, 1), (0.83, 1), (0.84, 2), (0.95, 2), (0.96, 3), (0.999, 3), (0.9999, 4)],
)
def test_keep_energy_counts(keep_energy, expected, dtype):
    # Energies 16, 2.25, 0.81 and 0.01 out of 19.07: one triplet keeps 0.8390, two keep 0.9570,
    # three keep 0.99948 and four keep all of it (the fifth singular value is zero up to rounding).
    weight = _weight_with_spectrum([4.0, 1.5, 0.9, 0.1], 6, 5, seed=0, dtype=dtype)
    linear = nn.Linear(5, 6, dtype=dtype)
    with torch.no_grad():
        linear.weight.copy_(weight)
    model = nn.Sequential(linear)
    report = prune_singular_values(model, keep_energy=keep_energy)
    assert report.layers[0].kept == expected
    assert report.layers[0].energy_kept >= keep_energy - 1e-6


def test_keep_energy_one_reproduces_weight(dtype):
    weight = _weight_with_spectrum([4.0, 1.5, 0.9, 0.1], 6, 5, seed=1, dtype=dtype)
    linear = nn.Linear(5, 6, dtype=dtype)
    with torch.no_grad():
        linear.weight.copy_(weight)
    model = nn.Sequential(linear)
    report = prune_singular_values(model, keep_energy=1.0)
    assert report.layers[0].kept >= 4
    assert report.layers[0].energy_kept == pytest.approx(1.0)
    _close(model[0].weight, weight, dtype)


@pytest.mark.parametrize("keep_ratio, expected", [(0.1, 1), (0.5, 3), (0.51, 4), (1.0, 6)])
def test_keep_ratio_counts(keep_ratio, expected):
    model = nn.Sequential(nn.Linear(6, 9))
    report = prune_singular_values(model, keep_ratio=keep_ratio)
    assert report.layers[0].kept == expected


def test_zero_weight_keeps_one_triplet():
    linear = nn.Linear(4, 3)
    with torch.no_grad():
        linear.weight.zero_()
    model = nn.Sequential(linear)
    report = prune_singular_values(model, keep_energy=0.9)
    assert report.layers[0].kept == 1
    assert report.layers[0].energy_kept == 1.0
    assert torch.count_nonzero(model[0].weight) == 0


def test_sst_model_uses_current_factors():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 8))
    apply_lowrank(model, "sst", 2)
    assert isinstance(model[0], SSTLinear)
    dense = model[0].weight.clone()
    U, S, Vh = torch.linalg.svd(dense)
    prune_singular_values(model, keep_count=4)
    torch.testing.assert_close(model[0].weight, (U[:, :4] * S[:4]) @ Vh[:4], atol=1e-5, rtol=1e-4)


def test_prune_respects_targets_and_exclude():
    model = _model(torch.float32)
    report = prune_singular_values(model, keep_count=2, exclude=("head",))
    assert [layer.name for layer in report.layers] == ["first", "second"]
    assert type(model.head) is nn.Linear
    model = _model(torch.float32)
    report = prune_singular_values(model, keep_count=2, target_modules=["head"])
    assert [layer.name for layer in report.layers] == ["head"]


def test_report_totals_and_str():
    model = _model(torch.float32)
    report = prune_singular_values(model, keep_count=2)
    assert isinstance(report, PruneReport)
    assert report.weight_entries_before == 10 * 7 + 7 * 12 + 12 * 3
    assert report.weight_entries_after == 2 * (17 + 19 + 15)
    text = str(report)
    assert "3 layers" in text
    assert "first: kept 2/7 triplets" in text


def test_pruned_layer_trains():
    model = nn.Sequential(nn.Linear(6, 4))
    prune_singular_values(model, keep_count=2)
    model(torch.randn(3, 6)).sum().backward()
    assert model[0].left.grad is not None
    assert model[0].right.grad is not None


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({}, r"exactly one of keep_count, keep_ratio and keep_energy, got none"),
        ({"keep_count": 2, "keep_ratio": 0.5}, r"got \['keep_count', 'keep_ratio'\]"),
        ({"keep_count": 0}, "keep_count must be an int >= 1, got 0"),
        ({"keep_count": 2.0}, "keep_count must be an int >= 1, got 2.0"),
        ({"keep_ratio": 0.0}, r"keep_ratio must be a number in \(0, 1\], got 0.0"),
        ({"keep_ratio": 1.5}, r"keep_ratio must be a number in \(0, 1\], got 1.5"),
        ({"keep_energy": -0.1}, r"keep_energy must be a number in \(0, 1\]"),
        ({"keep_energy": float("nan")}, r"keep_energy must be a number in \(0, 1\]"),
    ],
)
def test_criterion_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        prune_singular_values(_model(torch.float32), **kwargs)


def test_rejects_non_finite_weight():
    model = _model(torch.float32)
    with torch.no_grad():
        model.second.weight[2, 1] = float("nan")
    with pytest.raises(ValueError, match="layer 'second' has a weight with NaN or Inf"):
        prune_singular_values(model, keep_count=2)
    assert type(model.first) is nn.Linear


def test_rejects_non_linear_target():
    with pytest.raises(TypeError, match="module 'act' matches target_modules but its type is Tanh"):
        prune_singular_values(_model(torch.float32), keep_count=2, target_modules=["act"])

