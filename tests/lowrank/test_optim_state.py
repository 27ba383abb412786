"""Tests for reset_optimizer_state."""

import geoopt
import pytest
import torch
from torch import nn

from hypersst.lowrank import MOMENT_KEYS, reset_optimizer_state

OPTIMIZERS = {
    "adam": lambda params: torch.optim.Adam(params, lr=1e-2),
    "adam_amsgrad": lambda params: torch.optim.Adam(params, lr=1e-2, amsgrad=True),
    "adamw": lambda params: torch.optim.AdamW(params, lr=1e-2, amsgrad=True),
    "adam_foreach": lambda params: torch.optim.Adam(params, lr=1e-2, foreach=True),
    "sgd_momentum": lambda params: torch.optim.SGD(params, lr=1e-2, momentum=0.9),
    "riemannian_adam": lambda params: geoopt.optim.RiemannianAdam(params, lr=1e-2, amsgrad=True),
    "riemannian_sgd": lambda params: geoopt.optim.RiemannianSGD(params, lr=1e-2, momentum=0.9),
}
EXPECTED_KEYS = {
    "adam": {"exp_avg", "exp_avg_sq"},
    "adam_amsgrad": {"exp_avg", "exp_avg_sq", "max_exp_avg_sq"},
    "adamw": {"exp_avg", "exp_avg_sq", "max_exp_avg_sq"},
    "adam_foreach": {"exp_avg", "exp_avg_sq"},
    "sgd_momentum": {"momentum_buffer"},
    "riemannian_adam": {"exp_avg", "exp_avg_sq", "max_exp_avg_sq"},
    "riemannian_sgd": {"momentum_buffer"},
}


def _trained(name, dtype, seed=0, steps=3):
    """Return (params, optimizer) after a few steps, so every moment buffer is non-zero."""
    generator = torch.Generator().manual_seed(seed)
    first = nn.Parameter(torch.randn(5, 4, generator=generator, dtype=dtype))
    second = nn.Parameter(torch.randn(3, generator=generator, dtype=dtype))
    optimizer = OPTIMIZERS[name]([first, second])
    for _ in range(steps):
        optimizer.zero_grad()
        loss = (first.sin() * torch.arange(1, 5, dtype=dtype)).pow(2).sum() + second.pow(3).sum()
        loss.backward()
        optimizer.step()
    return first, second, optimizer


def _moments(optimizer, param):
    return {key: value for key, value in optimizer.state[param].items() if key in MOMENT_KEYS and value is not None}


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_whole_reset_zeroes_in_place(name, seed, dtype):
    first, second, optimizer = _trained(name, dtype, seed)
    buffers = _moments(optimizer, first)
    assert set(buffers) == EXPECTED_KEYS[name]
    assert all(torch.count_nonzero(buffer) > 0 for buffer in buffers.values())
    other_before = {key: value.clone() for key, value in _moments(optimizer, second).items()}
    step_before = optimizer.state[first].get("step")
    step_before = step_before.clone() if isinstance(step_before, torch.Tensor) else step_before

    reset_optimizer_state(optimizer, first)

    for key, buffer in buffers.items():
        assert optimizer.state[first][key] is buffer, key
        assert torch.count_nonzero(buffer) == 0, key
    for key, value in other_before.items():
        assert torch.equal(optimizer.state[second][key], value), key
    if step_before is not None:
        assert optimizer.state[first]["step"] == step_before


@pytest.mark.parametrize("dim", [0, 1, -1])
@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_slice_reset_zeroes_only_slices(name, dim, dtype):
    first, _, optimizer = _trained(name, dtype)
    before = {key: value.clone() for key, value in _moments(optimizer, first).items()}
    index = torch.tensor([0, 2])

    reset_optimizer_state(optimizer, first, index=index, dim=dim)

    for key, old in before.items():
        new = optimizer.state[first][key]
        selected = new.index_select(dim, index)
        assert torch.count_nonzero(selected) == 0, key
        keep = torch.tensor([i for i in range(first.shape[dim]) if i not in (0, 2)])
        assert torch.equal(new.index_select(dim, keep), old.index_select(dim, keep)), key


@pytest.mark.parametrize(
    "index",
    [[1, 3], (1, 3), range(1, 4, 2), torch.tensor([1, 3]), torch.tensor([False, True, False, True, False]),
     [-4, -2]],
    ids=["list", "tuple", "range", "tensor", "mask", "negative"],
)
def test_index_forms(index):
    first, _, optimizer = _trained("adam", torch.float64)
    reset_optimizer_state(optimizer, first, index=index)
    exp_avg = optimizer.state[first]["exp_avg"]
    assert torch.count_nonzero(exp_avg[[1, 3]]) == 0
    assert torch.count_nonzero(exp_avg[[0, 2, 4]]) == exp_avg[[0, 2, 4]].numel()


def test_empty_index_changes_nothing():
    first, _, optimizer = _trained("adam", torch.float64)
    before = optimizer.state[first]["exp_avg"].clone()
    reset_optimizer_state(optimizer, first, index=torch.tensor([], dtype=torch.long))
    assert torch.equal(optimizer.state[first]["exp_avg"], before)


@pytest.mark.parametrize("name", ["adam", "riemannian_adam"])
def test_reset_step(name):
    first, _, optimizer = _trained(name, torch.float32)
    reset_optimizer_state(optimizer, first, reset_step=True)
    assert optimizer.state[first]["step"] == 0
    assert torch.count_nonzero(optimizer.state[first]["exp_avg"]) == 0


def test_parameter_without_state_is_left_alone():
    param = nn.Parameter(torch.ones(3))
    optimizer = torch.optim.Adam([param])
    reset_optimizer_state(optimizer, param)
    assert param not in optimizer.state


def test_custom_keys():
    param = nn.Parameter(torch.ones(4))
    optimizer = torch.optim.Adagrad([param])
    param.sum().backward()
    optimizer.step()
    assert torch.count_nonzero(optimizer.state[param]["sum"]) > 0
    reset_optimizer_state(optimizer, param)
    assert torch.count_nonzero(optimizer.state[param]["sum"]) > 0
    reset_optimizer_state(optimizer, param, keys=("sum",))
    assert torch.count_nonzero(optimizer.state[param]["sum"]) == 0


def test_training_continues_after_reset():
    first, second, optimizer = _trained("adam", torch.float32)
    reset_optimizer_state(optimizer, first, index=[1])
    optimizer.zero_grad()
    first.pow(2).sum().backward()
    optimizer.step()
    assert torch.isfinite(first).all()


def test_rejects_parameter_outside_optimizer():
    _, _, optimizer = _trained("adam", torch.float32)
    with pytest.raises(ValueError, match="in no param group of the optimizer"):
        reset_optimizer_state(optimizer, nn.Parameter(torch.ones(2)))


def test_rejects_non_optimizer():
    with pytest.raises(TypeError, match="expected a torch.optim.Optimizer, got dict"):
        reset_optimizer_state({}, nn.Parameter(torch.ones(2)))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"index": [0], "dim": 2}, "dim=2 is out of range for a parameter with 2 dimensions"),
        ({"index": [5]}, r"index values must lie in \[-5, 5\)"),
        ({"index": [-6]}, r"index values must lie in \[-5, 5\)"),
        ({"index": torch.tensor([0.5])}, "1-D integer or boolean tensor"),
        ({"index": torch.tensor([[0]])}, "1-D integer or boolean tensor"),
        ({"index": torch.tensor([True, False])}, r"boolean index must have shape \(5,\)"),
        ({"index": [0], "reset_step": True}, "reset_step=True needs index=None"),
    ],
)
def test_rejects_bad_index(kwargs, match):
    first, _, optimizer = _trained("adam", torch.float32)
    with pytest.raises(ValueError, match=match):
        reset_optimizer_state(optimizer, first, **kwargs)


def test_rejects_slices_of_differently_shaped_state():
    first, _, optimizer = _trained("adam", torch.float32)
    optimizer.state[first]["exp_avg"] = torch.ones(2, 4)
    with pytest.raises(ValueError, match="state entry 'exp_avg' has shape"):
        reset_optimizer_state(optimizer, first, index=[0])


def test_rejects_non_tensor_state():
    first, _, optimizer = _trained("adam", torch.float32)
    optimizer.state[first]["exp_avg"] = 3.0
    with pytest.raises(TypeError, match="state entry 'exp_avg' is a float, not a tensor"):
        reset_optimizer_state(optimizer, first)
