"""Tests for make_galore_optimizer."""

import os
import sys
from collections import OrderedDict

import pytest
import torch
from torch import nn

from hypersst.lowrank import make_galore_optimizer


def _model():
    return nn.Sequential(
        OrderedDict(
            embed=nn.Embedding(10, 8),
            hidden=nn.Linear(8, 16),
            act=nn.Tanh(),
            lm_head=nn.Linear(16, 4),
        )
    )


def _groups(optimizer):
    projected = [group for group in optimizer.param_groups if "rank" in group]
    plain = [group for group in optimizer.param_groups if "rank" not in group]
    return projected, plain


def test_groups_split_weights_from_the_rest():
    model = _model()
    optimizer = make_galore_optimizer(model, rank=2, lr=1e-3, exclude=("lm_head",), update_proj_gap=50)
    assert type(optimizer).__module__.startswith("galore_torch")
    projected, plain = _groups(optimizer)
    assert len(projected) == 1
    assert len(plain) == 1
    assert projected[0]["params"] == [model.hidden.weight]
    assert projected[0]["rank"] == 2
    assert projected[0]["update_proj_gap"] == 50
    assert projected[0]["scale"] == 0.25
    plain_ids = {id(p) for p in plain[0]["params"]}
    expected = {id(p) for p in (model.embed.weight, model.hidden.bias, model.lm_head.weight, model.lm_head.bias)}
    assert plain_ids == expected


def test_frozen_parameters_are_left_out():
    model = _model()
    model.embed.weight.requires_grad_(False)
    optimizer = make_galore_optimizer(model, rank=2, lr=1e-3)
    held = {id(p) for group in optimizer.param_groups for p in group["params"]}
    assert id(model.embed.weight) not in held
    assert id(model.lm_head.weight) in held


def test_sets_hub_offline(monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    make_galore_optimizer(_model(), rank=2, lr=1e-3)
    assert os.environ["HF_HUB_OFFLINE"] == "1"


@pytest.mark.parametrize("seed", [0, 1])
def test_galore_trains_tiny_model(seed):
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(8, 16), nn.Tanh(), nn.Linear(16, 16), nn.Tanh(), nn.Linear(16, 1))
    x = torch.randn(64, 8)
    y = torch.sin(x.sum(dim=1, keepdim=True))
    optimizer = make_galore_optimizer(model, rank=2, lr=2e-2, update_proj_gap=10, scale=1.0, exclude=("4",))
    weight_before = model[2].weight.detach().clone()
    losses = []
    for _ in range(150):
        optimizer.zero_grad()
        loss = nn.functional.mse_loss(model(x), y)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]
    assert not torch.equal(model[2].weight, weight_before)
    assert optimizer.state[model[2].weight]["projector"].ortho_matrix.shape == (2, 16)

    # One GaLore step changes a projected weight by a matrix of rank at most `rank`. The third singular
    # value of the change comes only from float32 rounding in the subtraction.
    before_step = model[2].weight.detach().clone()
    optimizer.zero_grad()
    nn.functional.mse_loss(model(x), y).backward()
    optimizer.step()
    change = torch.linalg.svdvals((model[2].weight.detach() - before_step).double())
    assert change[0] > 0
    assert change[2] < 1e-3 * change[0]


def test_missing_package_names_install_command(monkeypatch):
    monkeypatch.setitem(sys.modules, "galore_torch", None)
    with pytest.raises(ImportError, match=r"pip install 'hypersst\[exp\]'"):
        make_galore_optimizer(_model(), rank=2, lr=1e-3)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"rank": 9}, ValueError, r"layer 'hidden': rank=9 is out of range .* = 8"),
        ({"rank": 0}, ValueError, r"layer 'hidden': rank=0 is out of range"),
        ({"rank": 2.0}, TypeError, "rank must be an int"),
        ({"rank": 2, "update_proj_gap": 0}, ValueError, "update_proj_gap must be an int >= 1, got 0"),
        ({"rank": 2, "target_modules": ["act"]}, TypeError, "module 'act' matches target_modules but its type is Tanh"),
    ],
)
def test_errors(kwargs, error, match):
    with pytest.raises(error, match=match):
        make_galore_optimizer(_model(), lr=1e-3, **kwargs)


def test_rejects_model_without_trainable_parameters():
    model = _model().requires_grad_(False)
    with pytest.raises(ValueError, match="the model has no trainable parameter"):
        make_galore_optimizer(model, rank=2, lr=1e-3)
