"""Tests for hypersst.nn.lorentz: LorentzLinear on every curvature and training method."""

import math

import pytest
import torch
from torch import nn

from hypersst.manifolds import Lorentz, Stereographic
from hypersst.nn import LorentzLinear

K_VALUES = [0.1, 0.5, 1.0, 2.0, 10.0]
SEEDS = [0, 1]
SHAPES = [(7,), (3, 5)]
IN, OUT = 6, 5


def on_hyperboloid(y: torch.Tensor, k: float) -> bool:
    y64 = y.detach().double()
    residual = (-y64[..., 0] ** 2 + y64[..., 1:].pow(2).sum(-1) + k).abs()
    scale = k + y64.pow(2).sum(-1)
    return bool(torch.isfinite(y).all() and (y[..., 0] > 0).all()
                and (residual <= 64 * torch.finfo(y.dtype).eps * scale).all())


def random_points(manifold, shape, dtype, seed, scale=1.0):
    gen = torch.Generator().manual_seed(seed)
    u = torch.randn(*shape, IN, generator=gen, dtype=torch.float64) * scale
    return manifold.expmap0(u).to(dtype)


def perturbed_layer(manifold, dtype, seed, **kwargs):
    torch.manual_seed(seed)
    layer = LorentzLinear(IN, OUT, manifold, dtype=dtype, **kwargs)
    with torch.no_grad():  # move away from the init, whose time column and bias are zero
        for param in layer.linear.parameters():
            param.add_(0.3 * torch.randn_like(param))
    return layer


@pytest.mark.parametrize("k", K_VALUES)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("seed", SEEDS)
def test_outputs_lie_on_the_hyperboloid(dtype, k, shape, seed):
    manifold = Lorentz(k)
    layer = perturbed_layer(manifold, dtype, seed)
    y = layer(random_points(manifold, shape, dtype, seed, scale=math.sqrt(k)))
    assert y.shape == (*shape, OUT) and y.dtype == dtype
    assert on_hyperboloid(y, k)
    offset = 1.1 * math.sqrt(k)
    assert (y[..., 0] >= offset * (1 - 1e-6)).all() and (y[..., 0] <= offset + 10.0 + 1e-4).all()


@pytest.mark.parametrize("seed", SEEDS)
def test_matches_hybonet_formula_at_k1(dtype, seed):
    manifold = Lorentz(1.0)
    layer = perturbed_layer(manifold, dtype, seed, dropout=0.0)
    with torch.no_grad():
        layer.scale.fill_(1.7)
    x = random_points(manifold, (3, 4), dtype, seed)
    z = x @ layer.linear.weight.t() + layer.linear.bias
    time = torch.exp(torch.tensor(1.7, dtype=dtype)) * torch.sigmoid(z[..., :1]) + 1.1
    space = torch.sqrt(time**2 - 1) * z[..., 1:] / z[..., 1:].norm(dim=-1, keepdim=True)
    expected = torch.cat((time, space), dim=-1)
    tol = {torch.float32: 1e-5, torch.float64: 1e-13}[dtype]
    assert torch.allclose(layer(x), expected, rtol=tol, atol=tol)


def test_initialization_follows_hybonet():
    torch.manual_seed(0)
    layer = LorentzLinear(IN, 40, Lorentz(1.0))
    weight = layer.linear.weight
    assert torch.equal(weight[:, 0], torch.zeros(40))
    bound = 1.0 / math.sqrt(40)
    assert weight[:, 1:].abs().max() <= bound and weight[:, 1:].abs().max() > 0.8 * bound
    assert torch.equal(layer.linear.bias, torch.zeros(40))
    assert layer.scale.item() == pytest.approx(math.log(10.0))


@pytest.mark.parametrize("method", ["full", "lora", "relora", "sst"])
@pytest.mark.parametrize("k", [0.5, 2.0])
def test_every_training_method_gives_points_and_gradients(method, k):
    manifold = Lorentz(k)
    torch.manual_seed(0)
    layer = LorentzLinear(IN, OUT, manifold, method=method, rank=None if method == "full" else 2, dtype=torch.float64)
    assert abs(layer.linear.weight[:, 0]).max() < 1e-12  # the HyboNet init reaches every inner layer
    x = random_points(manifold, (3, 4), torch.float64, 0)
    y = layer(x)
    assert on_hyperboloid(y, k)
    y[..., 1:].sum().backward()
    grads = [p.grad for p in layer.parameters() if p.requires_grad]
    assert grads and all(g is not None and torch.isfinite(g).all() for g in grads)
    assert layer.scale.grad is not None


def test_time_offset_and_nonlin_and_dropout():
    manifold = Lorentz(4.0)
    layer = LorentzLinear(IN, OUT, manifold, time_offset=2.5, nonlin=torch.tanh, dropout=0.5, dtype=torch.float64)
    x = random_points(manifold, (50,), torch.float64, 0)
    layer.train()
    assert on_hyperboloid(layer(x), 4.0)
    layer.eval()
    y = layer(x)
    assert on_hyperboloid(y, 4.0)
    assert (y[..., 0] >= 2.5).all()
    assert torch.equal(y, layer(x))  # no dropout in eval mode
    z = layer.linear(torch.tanh(x))
    assert torch.allclose(y[..., 0], 10 * torch.sigmoid(z[..., 0]) + 2.5, rtol=1e-13)


@pytest.mark.parametrize("k", K_VALUES)
def test_origin_input_gives_a_point_and_finite_gradients_in_float32(k):
    manifold = Lorentz(k)
    layer = LorentzLinear(IN, OUT, manifold)  # fresh: the time column is zero, so z_s = 0 at the origin
    x = manifold.origin(4, IN).clone().requires_grad_(True)
    y = layer(x)
    assert on_hyperboloid(y, k)
    assert torch.allclose(y, manifold.origin(4, OUT))
    y.sum().backward()
    assert torch.isfinite(x.grad).all()
    assert all(torch.isfinite(p.grad).all() for p in layer.parameters())


@pytest.mark.parametrize("k", K_VALUES)
def test_huge_norms_give_points_in_float32(k):
    manifold = Lorentz(k)
    layer = perturbed_layer(manifold, torch.float32, 0)
    space = torch.randn(8, IN - 1) * 1e25
    x = manifold.projx(torch.cat((torch.zeros(8, 1), space), dim=-1)).requires_grad_(True)
    y = layer(x)
    assert on_hyperboloid(y, k)
    y.sum().backward()
    assert not torch.isnan(x.grad).any()


def test_gradients_are_finite_over_a_log_uniform_grid_of_norms_and_curvatures(dtype):
    for k in [10.0 ** e for e in range(-3, 4)]:
        manifold = Lorentz(k)
        layer = perturbed_layer(manifold, dtype, 0)
        gen = torch.Generator().manual_seed(1)
        norms = torch.logspace(-8, 1.5, 20, dtype=torch.float64).unsqueeze(-1) * math.sqrt(k)
        u = torch.randn(20, IN, generator=gen, dtype=torch.float64)
        u[:, 0] = 0
        u = u / u.norm(dim=-1, keepdim=True) * norms
        x = manifold.expmap0(u).to(dtype).requires_grad_(True)
        y = layer(x)
        assert on_hyperboloid(y, k), k
        (y * torch.linspace(-1, 1, OUT, dtype=dtype)).sum().backward()
        assert torch.isfinite(x.grad).all(), k
        assert all(torch.isfinite(p.grad).all() for p in layer.parameters()), k


@pytest.mark.parametrize("direction", [1.0, -1.0], ids=["toward_infinity", "toward_zero"])
def test_learnable_curvature_keeps_outputs_valid_under_an_adversarial_objective(direction):
    manifold = Lorentz(1.0, learnable=True)
    layer = perturbed_layer(manifold, torch.float64, 0)
    x_space = torch.randn(16, IN - 1, dtype=torch.float64)
    own = [p for name, p in layer.named_parameters() if not name.startswith("manifold.")]
    curvature_optimizer = torch.optim.Adam(manifold.parameters(), lr=0.1)
    layer_optimizer = torch.optim.Adam(own, lr=0.01)
    for step in range(1000):
        curvature_optimizer.zero_grad()
        layer_optimizer.zero_grad()
        x = manifold.projx(torch.cat((torch.zeros(16, 1, dtype=torch.float64), x_space), dim=-1))
        # the layer trains on its own objective; the curvature follows the adversary alone: minimizing
        # -direction * log k drives k to infinity (direction 1) or to zero (direction -1)
        layer(x)[..., 1:].pow(2).sum().backward()
        manifold.raw_k.grad = None
        (-direction * torch.log(manifold.k)).backward()
        curvature_optimizer.step()
        layer_optimizer.step()
        if step % 50 == 49:
            k = manifold.k.item()
            assert math.isfinite(k) and k >= manifold.min_k
            with torch.no_grad():
                assert on_hyperboloid(layer(manifold.projx(x)), k), (step, k)
    assert (k > 20.0) if direction > 0 else (k < 1e-3), k


def test_state_dict_round_trip():
    manifold = Lorentz(0.7)
    layer = perturbed_layer(manifold, torch.float64, 0)
    other = LorentzLinear(IN, OUT, Lorentz(0.7), dtype=torch.float64)
    other.load_state_dict(layer.state_dict())
    x = random_points(manifold, (5,), torch.float64, 1)
    assert torch.equal(other(x), layer(x))


def test_bad_arguments_are_rejected():
    manifold = Lorentz(1.0)
    with pytest.raises(ValueError, match=r"in_features \(ambient, time included\) must be an int >= 2, got 1"):
        LorentzLinear(1, OUT, manifold)
    with pytest.raises(ValueError, match="out_features .* must be an int >= 2"):
        LorentzLinear(IN, 0, manifold)
    with pytest.raises(TypeError, match="manifold must be a hypersst.manifolds.Lorentz, got Stereographic"):
        LorentzLinear(IN, OUT, Stereographic(-1.0))
    with pytest.raises(ValueError, match=r"time_offset must exceed sqrt\(k\) = 2 .*, got 1.5"):
        LorentzLinear(IN, OUT, Lorentz(4.0), time_offset=1.5)
    with pytest.raises(ValueError, match="cannot follow a learnable curvature"):
        LorentzLinear(IN, OUT, Lorentz(1.0, learnable=True), time_offset=2.0)
    with pytest.raises(ValueError, match=r"dropout must be a probability in \[0, 1\), got 1.0"):
        LorentzLinear(IN, OUT, manifold, dropout=1.0)
    with pytest.raises(TypeError, match="nonlin must be callable"):
        LorentzLinear(IN, OUT, manifold, nonlin="relu")
    with pytest.raises(ValueError, match="needs a rank"):
        LorentzLinear(IN, OUT, manifold, method="sst")
    layer = LorentzLinear(IN, OUT, manifold)
    with pytest.raises(ValueError, match=r"dimension 6 \(ambient coordinates, time included\), got shape \(3, 5\)"):
        layer(torch.ones(3, IN - 1))
    assert "time_offset=1.1*sqrt(k)" in repr(layer)
    assert isinstance(layer.linear, nn.Linear)
