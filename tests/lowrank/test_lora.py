"""Tests for LoRALinear and ReLoRALinear."""

import copy
import math

import geoopt
import pytest
import torch
from scipy import stats
from torch import nn

from hypersst import SSTConfig, SSTScheduler
from hypersst.lowrank import LoRALinear, ReLoRALinear, apply_lowrank

SEEDS = (0, 1, 2)
ATOL = {torch.float32: 1e-5, torch.float64: 1e-12}
RTOL = {torch.float32: 1e-5, torch.float64: 1e-12}


def _close(actual, expected, dtype):
    torch.testing.assert_close(actual, expected, atol=ATOL[dtype], rtol=RTOL[dtype])


def _train_factors(layer, steps=3, seed=0):
    """Give lora_A and lora_B non-trivial values, so that merges have something to fold in."""
    generator = torch.Generator().manual_seed(seed + 100)
    with torch.no_grad():
        layer.lora_B.normal_(generator=generator)
        layer.lora_A.normal_(generator=generator)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("cls", [LoRALinear, ReLoRALinear])
def test_from_linear_preserves_outputs_exactly(cls, seed, dtype):
    torch.manual_seed(seed)
    linear = nn.Linear(7, 5, dtype=dtype)
    x = torch.randn(4, 3, 7, dtype=dtype)
    layer = cls.from_linear(linear, rank=3)
    assert torch.equal(layer(x), linear(x))
    assert layer.base_weight.dtype == dtype
    assert layer.lora_A.dtype == dtype


@pytest.mark.parametrize("seed", SEEDS)
def test_from_linear_copies_tensors(seed, dtype):
    torch.manual_seed(seed)
    linear = nn.Linear(6, 4, dtype=dtype)
    layer = LoRALinear.from_linear(linear, rank=2)
    with torch.no_grad():
        linear.weight.add_(1.0)
        linear.bias.add_(1.0)
    assert not torch.equal(layer.base_weight, linear.weight)
    assert not torch.equal(layer.bias, linear.bias)


@pytest.mark.parametrize("bias", [True, False])
def test_trainable_parameter_count(bias):
    layer = LoRALinear(12, 9, rank=3, bias=bias)
    trainable = sum(p.numel() for p in layer.parameters() if p.requires_grad)
    assert trainable == 3 * (12 + 9) + (9 if bias else 0)
    assert "base_weight" in dict(layer.named_buffers())
    assert "base_weight" not in dict(layer.named_parameters())


def test_initial_factors():
    layer = LoRALinear(400, 30, rank=20)
    assert torch.count_nonzero(layer.lora_B) == 0
    bound = 1 / math.sqrt(400)
    values = layer.lora_A.detach().flatten().numpy() / bound
    assert values.min() >= -1
    assert values.max() <= 1
    # Kaiming-uniform with a = sqrt(5) is U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
    assert stats.kstest(values, "uniform", args=(-1, 2)).pvalue > 1e-3


def test_default_alpha_gives_unit_scaling():
    layer = LoRALinear(8, 8, rank=4)
    assert layer.alpha == 4.0
    assert layer.scaling == 1.0
    scaled = LoRALinear(8, 8, rank=4, alpha=16)
    assert scaled.scaling == 4.0


@pytest.mark.parametrize("seed", SEEDS)
def test_forward_matches_dense_weight(seed, dtype):
    torch.manual_seed(seed)
    layer = LoRALinear(7, 5, rank=3, alpha=6, dtype=dtype)
    _train_factors(layer, seed=seed)
    x = torch.randn(2, 4, 7, dtype=dtype)
    expected = x @ (layer.base_weight + 2.0 * layer.lora_B @ layer.lora_A).T + layer.bias
    _close(layer(x), expected, dtype)
    _close(layer.weight, layer.base_weight + 2.0 * layer.lora_B @ layer.lora_A, dtype)


def test_weight_view_is_differentiable():
    layer = LoRALinear(5, 4, rank=2)
    _train_factors(layer)
    layer.weight.sum().backward()
    assert layer.lora_A.grad is not None
    assert layer.lora_B.grad is not None
    assert torch.count_nonzero(layer.lora_A.grad) > 0


def test_only_factors_and_bias_get_gradients():
    layer = LoRALinear(5, 4, rank=2)
    layer(torch.randn(3, 5)).sum().backward()
    assert layer.base_weight.grad is None
    # With B = 0 the gradient of A vanishes; B and the bias still learn.
    assert torch.count_nonzero(layer.lora_A.grad) == 0
    assert torch.count_nonzero(layer.lora_B.grad) > 0
    assert layer.bias.grad is not None


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("cls", [LoRALinear, ReLoRALinear])
def test_to_linear_preserves_outputs(cls, seed, dtype):
    torch.manual_seed(seed)
    layer = cls(9, 6, rank=4, alpha=2.5, dtype=dtype)
    _train_factors(layer, seed=seed)
    x = torch.randn(5, 9, dtype=dtype)
    linear = layer.to_linear()
    assert type(linear) is nn.Linear
    assert linear.weight.dtype == dtype
    _close(linear(x), layer(x), dtype)


def test_to_linear_without_bias():
    layer = LoRALinear(4, 3, rank=1, bias=False)
    assert layer.to_linear().bias is None


def test_to_linear_rejects_non_finite():
    layer = LoRALinear(4, 3, rank=1)
    with torch.no_grad():
        layer.lora_B.fill_(float("nan"))
    with pytest.raises(RuntimeError, match="NaN or Inf"):
        layer.to_linear()


@pytest.mark.parametrize("cls", [LoRALinear, ReLoRALinear])
def test_load_dense_weight(cls, dtype):
    torch.manual_seed(0)
    layer = cls(5, 4, rank=2, dtype=dtype)
    _train_factors(layer)
    weight = torch.randn(4, 5, dtype=dtype)
    layer.load_dense_weight_(weight)
    x = torch.randn(3, 5, dtype=dtype)
    _close(layer(x), x @ weight.T + layer.bias, dtype)
    assert torch.count_nonzero(layer.lora_B) == 0


def test_load_dense_weight_errors():
    layer = LoRALinear(5, 4, rank=2)
    with pytest.raises(ValueError, match=r"proj: expected a weight of shape \(4, 5\), got \(5, 4\)"):
        layer.load_dense_weight_(torch.ones(5, 4), name="proj")
    with pytest.raises(ValueError, match="LoRALinear: the weight to load contains NaN or Inf"):
        layer.load_dense_weight_(torch.full((4, 5), float("nan")))


def test_state_dict_round_trip():
    layer = ReLoRALinear(6, 5, rank=2)
    _train_factors(layer)
    copy = ReLoRALinear(6, 5, rank=2)
    copy.load_state_dict(layer.state_dict())
    x = torch.randn(3, 6)
    assert torch.equal(copy(x), layer(x))


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"rank": 0}, ValueError, "rank=0 is out of range"),
        ({"rank": 6}, ValueError, r"rank=6 is out of range .* min\(in_features, out_features\) = 5"),
        ({"rank": 2.0}, TypeError, "rank must be an int"),
        ({"rank": True}, TypeError, "rank must be an int"),
        ({"rank": 2, "alpha": 0.0}, ValueError, "alpha must be a finite number > 0"),
        ({"rank": 2, "alpha": float("inf")}, ValueError, "alpha must be a finite number > 0"),
    ],
)
def test_constructor_rejects_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        LoRALinear(8, 5, **kwargs)


def test_constructor_rejects_bad_features():
    with pytest.raises(ValueError, match="in_features must be a positive int"):
        LoRALinear(0, 5, rank=1)


def test_from_linear_rejects_other_modules():
    with pytest.raises(TypeError, match="expected an nn.Linear, got Conv1d"):
        LoRALinear.from_linear(nn.Conv1d(3, 3, 1), rank=1)


# ---------------------------------------------------------------------------------------------- ReLoRA*


def _optimizer(name, params):
    if name == "adam":
        return torch.optim.Adam(params, lr=1e-2)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=1e-2, amsgrad=True)
    if name == "sgd":
        return torch.optim.SGD(params, lr=1e-2, momentum=0.9)
    return geoopt.optim.RiemannianAdam(params, lr=1e-2, amsgrad=True)


OPTIMIZERS = ("adam", "adamw", "sgd", "riemannian_adam")


@pytest.mark.parametrize("seed", SEEDS)
def test_merge_and_reset_preserves_outputs(seed, dtype):
    torch.manual_seed(seed)
    layer = ReLoRALinear(10, 7, rank=3, alpha=5, dtype=dtype)
    _train_factors(layer, seed=seed)
    x = torch.randn(6, 10, dtype=dtype)
    before = layer(x).detach()
    expected_weight = layer.weight.detach().clone()
    layer.merge_and_reset_()
    _close(layer(x), before, dtype)
    _close(layer.base_weight, expected_weight, dtype)
    assert torch.count_nonzero(layer.lora_B) == 0
    bound = 1 / math.sqrt(10)
    assert layer.lora_A.abs().max() <= bound


def test_merge_and_reset_draws_from_generator():
    first = ReLoRALinear(8, 6, rank=2)
    second = ReLoRALinear(8, 6, rank=2)
    first.merge_and_reset_(generator=torch.Generator().manual_seed(7))
    second.merge_and_reset_(generator=torch.Generator().manual_seed(7))
    assert torch.equal(first.lora_A, second.lora_A)
    third = ReLoRALinear(8, 6, rank=2)
    third.merge_and_reset_(generator=torch.Generator().manual_seed(8))
    assert not torch.equal(first.lora_A, third.lora_A)


def test_generator_on_other_device():
    # A meta-device layer replaces a CUDA one here. The CPU generator draws on the CPU and the values
    # are copied over, which is what happens when the scheduler's CPU generator serves a GPU layer.
    layer = ReLoRALinear(8, 6, rank=2, device="meta")
    layer.reset_lora_parameters(generator=torch.Generator().manual_seed(7))
    assert layer.lora_A.device.type == "meta"
    assert layer.lora_A.shape == (2, 8)


def test_repeated_merges_exceed_rank():
    torch.manual_seed(0)
    layer = ReLoRALinear(8, 8, rank=1)
    with torch.no_grad():
        layer.base_weight.zero_()
    for seed in range(4):
        _train_factors(layer, seed=seed)
        layer.merge_and_reset_()
    assert torch.linalg.matrix_rank(layer.base_weight) == 4


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_merge_and_reset_zeroes_only_lora_state(name):
    torch.manual_seed(0)
    layer = ReLoRALinear(6, 5, rank=2)
    head = nn.Linear(5, 1)
    model = nn.Sequential(layer, head)
    optimizer = _optimizer(name, model.parameters())
    for _ in range(3):
        optimizer.zero_grad()
        model(torch.randn(8, 6)).pow(2).sum().backward()
        optimizer.step()

    lora_state = {key: value for key, value in optimizer.state[layer.lora_B].items()}
    moment_keys = [key for key, value in lora_state.items() if isinstance(value, torch.Tensor) and value.dim() > 0]
    assert moment_keys, "the optimizer kept no moment buffer for lora_B"
    lora_buffers = {key: optimizer.state[layer.lora_B][key] for key in moment_keys}
    head_before = {k: v.clone() for k, v in optimizer.state[head.weight].items() if isinstance(v, torch.Tensor)}
    bias_before = {k: v.clone() for k, v in optimizer.state[layer.bias].items() if isinstance(v, torch.Tensor)}
    assert all(torch.count_nonzero(buffer) > 0 for buffer in lora_buffers.values())

    layer.merge_and_reset_(optimizer)

    for param in (layer.lora_A, layer.lora_B):
        for key in moment_keys:
            assert torch.count_nonzero(optimizer.state[param][key]) == 0, key
    for key, buffer in lora_buffers.items():
        assert optimizer.state[layer.lora_B][key] is buffer, f"{key} was replaced, not zeroed in place"
    for key, value in head_before.items():
        assert torch.equal(optimizer.state[head.weight][key], value), key
    for key, value in bias_before.items():
        assert torch.equal(optimizer.state[layer.bias][key], value), key

    # Training continues with the same optimizer.
    optimizer.zero_grad()
    model(torch.randn(8, 6)).pow(2).sum().backward()
    optimizer.step()
    assert torch.isfinite(layer.lora_A).all()


def test_merge_and_reset_rejects_foreign_optimizer():
    layer = ReLoRALinear(6, 5, rank=2)
    _train_factors(layer)
    before = layer.base_weight.clone()
    optimizer = torch.optim.Adam([nn.Parameter(torch.zeros(3))])
    with pytest.raises(ValueError, match="in no param group of the optimizer"):
        layer.merge_and_reset_(optimizer)
    assert torch.equal(layer.base_weight, before)


def test_merge_and_reset_rejects_non_finite_merge():
    layer = ReLoRALinear(6, 5, rank=2)
    with torch.no_grad():
        layer.lora_B.fill_(float("inf"))
        layer.lora_A.fill_(1.0)
    before = layer.base_weight.clone()
    with pytest.raises(RuntimeError, match="merging produced NaN or Inf; the layer was left unchanged"):
        layer.merge_and_reset_()
    assert torch.equal(layer.base_weight, before)


# ---------------------------------------------------------------------------------------------- with SSTScheduler


def _relora_run(steps, checkpoint_at=None, resume=None, state_reset="moments"):
    """Train a ReLoRA* model under SSTScheduler, optionally from a checkpoint or saving one after a step.

    Returns the model, the optimizer, the scheduler and the checkpoint (``None`` unless requested).
    """
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 2))
    apply_lowrank(model, "relora", 2)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    config = SSTConfig(rank=2, steps_per_iteration=3, warmup_steps=2, seed=5, state_reset=state_reset)
    scheduler = SSTScheduler(model, optimizer, config)
    data = torch.Generator().manual_seed(1)
    inputs = [torch.randn(4, 6, generator=data) for _ in range(steps)]
    start = 0
    if resume is not None:
        model.load_state_dict(resume["model"])
        optimizer.load_state_dict(resume["optimizer"])
        scheduler.load_state_dict(resume["scheduler"])
        start = resume["step"]
    checkpoint = None
    for step in range(start, steps):
        optimizer.zero_grad()
        model(inputs[step]).pow(2).sum().backward()
        optimizer.step()
        scheduler.step()
        if step + 1 == checkpoint_at:
            checkpoint = {
                "model": {k: v.clone() for k, v in model.state_dict().items()},
                "optimizer": copy.deepcopy(optimizer.state_dict()),
                "scheduler": copy.deepcopy(scheduler.state_dict()),
                "step": step + 1,
            }
    return model, optimizer, scheduler, checkpoint


def test_scheduler_merges_at_iteration_end():
    model, optimizer, _, _ = _relora_run(steps=3)
    for layer in (model[0], model[2]):
        assert torch.count_nonzero(layer.lora_B) == 0
        assert torch.count_nonzero(optimizer.state[layer.lora_A]["exp_avg"]) == 0
        assert torch.count_nonzero(optimizer.state[layer.lora_B]["exp_avg_sq"]) == 0
    model, _, _, _ = _relora_run(steps=4)
    assert torch.count_nonzero(model[0].lora_B) > 0


@pytest.mark.parametrize("state_reset, expected_step", [("moments", 3), ("restart", 0)])
def test_merge_step_counters_per_reset(state_reset, expected_step):
    model, optimizer, _, _ = _relora_run(steps=3, state_reset=state_reset)
    for layer in (model[0], model[2]):
        for param in (layer.lora_A, layer.lora_B):
            assert int(optimizer.state[param]["step"]) == expected_step
            assert torch.count_nonzero(optimizer.state[param]["exp_avg"]) == 0


def test_scheduler_resume_is_exact():
    full, _, _, checkpoint = _relora_run(steps=8, checkpoint_at=4)
    resumed, _, _, _ = _relora_run(steps=8, resume=checkpoint)
    for (name, expected), (_, actual) in zip(full.state_dict().items(), resumed.state_dict().items()):
        assert torch.equal(actual, expected), name
