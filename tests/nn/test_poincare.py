"""Tests for hypersst.nn.poincare: PoincareLinear on the ball and its exact flat limit."""

import math

import geoopt
import pytest
import torch

from hypersst.manifolds import Euclidean, Lorentz, PoincareBall, Stereographic
from hypersst.nn import PoincareLinear

KAPPAS = [-10.0, -1.0, -0.1, -1e-6, 0.0]
SHAPES = [(7,), (3, 5)]
IN, OUT = 6, 4


def ball_points(shape, dtype, kappa, seed, fraction=0.95):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(*shape, IN, generator=gen, dtype=torch.float64)
    if kappa < 0:
        radius = 1.0 / math.sqrt(-kappa)
        lengths = fraction * radius * torch.rand(*shape, 1, generator=gen, dtype=torch.float64)
        x = x / x.norm(dim=-1, keepdim=True) * lengths
    return x.to(dtype)


def layer_with_bias(manifold, dtype, seed):
    torch.manual_seed(seed)
    layer = PoincareLinear(IN, OUT, manifold, dtype=dtype)
    with torch.no_grad():
        bias = layer.bias if layer.bias is not None else layer.linear.bias
        bias.copy_(0.2 * torch.randn_like(bias))
    return layer


@pytest.mark.parametrize("kappa", KAPPAS)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("seed", [0, 1])
def test_outputs_lie_inside_the_ball(dtype, kappa, shape, seed):
    manifold = Stereographic(kappa)
    layer = layer_with_bias(manifold, dtype, seed)
    y = layer(ball_points(shape, dtype, kappa, seed))
    assert y.shape == (*shape, OUT) and y.dtype == dtype
    assert torch.isfinite(y).all()
    if kappa < 0:
        assert (y.norm(dim=-1) < 1.0 / math.sqrt(-kappa)).all()


def test_flat_layer_is_exactly_the_linear_map(dtype):
    for manifold in (Stereographic(0.0), Euclidean(), PoincareBall(0.0)):
        layer = layer_with_bias(manifold, dtype, 0)
        assert layer.bias is None and layer.linear.bias is not None
        x = torch.randn(3, 5, IN, dtype=dtype)
        assert torch.equal(layer(x), x @ layer.linear.weight.t() + layer.linear.bias)


@pytest.mark.parametrize(
    ("source", "loaded"),
    [(Stereographic(-1.0), "curvature kappa = -1"), (Stereographic(-1.0, learnable=True), "a learnable curvature")],
)
def test_flat_layer_rejects_a_curved_state(source, loaded):
    curved = PoincareLinear(IN, OUT, source, bias=False)
    flat = PoincareLinear(IN, OUT, Stereographic(0.0), bias=False)
    with pytest.raises(RuntimeError, match=f"the state has {loaded}, but this layer was built at kappa = 0"):
        flat.load_state_dict(curved.state_dict())


def test_same_kind_states_load():
    for kappa in (0.0, -0.5):
        source = PoincareLinear(IN, OUT, Stereographic(kappa))
        target = PoincareLinear(IN, OUT, Stereographic(kappa))
        target.load_state_dict(source.state_dict())
        x = ball_points((4,), torch.float32, kappa, 0)
        assert torch.equal(target(x), source(x))


@pytest.mark.parametrize("kappa", [-1.0, -0.1])
def test_matches_geoopt_mobius_matvec_and_add(kappa):
    manifold = Stereographic(kappa)
    layer = layer_with_bias(manifold, torch.float64, 0)
    reference = geoopt.Stereographic(torch.tensor(kappa, dtype=torch.float64))
    x = ball_points((8,), torch.float64, kappa, 1, fraction=0.8)
    expected = reference.mobius_add(reference.mobius_matvec(layer.linear.weight, x), reference.expmap0(layer.bias))
    assert torch.allclose(layer(x), expected, rtol=1e-10, atol=1e-12)


def test_outputs_converge_continuously_to_the_flat_layer_as_kappa_tends_to_zero():
    flat = layer_with_bias(Stereographic(0.0), torch.float64, 0)
    x = torch.randn(10, IN, dtype=torch.float64)
    expected = flat(x)
    errors = []
    for exponent in range(1, 9):
        layer = PoincareLinear(IN, OUT, Stereographic(-(10.0**-exponent)), dtype=torch.float64)
        with torch.no_grad():
            layer.linear.weight.copy_(flat.linear.weight)
            layer.bias.copy_(flat.linear.bias)
        out = layer(x)
        assert torch.isfinite(out).all()
        errors.append((out - expected).abs().max().item())
    assert all(later < earlier for earlier, later in zip(errors, errors[1:])), errors
    assert errors[-1] < 1e-6


@pytest.mark.parametrize("kappa", [-10.0, -1.0, -1e-6])
def test_no_nan_near_the_boundary_in_float32(kappa):
    manifold = Stereographic(kappa)
    layer = layer_with_bias(manifold, torch.float32, 0)
    direction = torch.randn(5, IN)
    radius = 1.0 / math.sqrt(-kappa)
    x = (direction / direction.norm(dim=-1, keepdim=True) * radius * (1 - 1e-7)).requires_grad_(True)
    y = layer(x)
    assert torch.isfinite(y).all() and (y.norm(dim=-1) < radius).all()
    y.sum().backward()
    assert not torch.isnan(x.grad).any()
    assert all(not torch.isnan(p.grad).any() for p in layer.parameters())


def test_origin_gives_the_bias_point_and_finite_gradients(dtype):
    manifold = Stereographic(-1.0)
    layer = layer_with_bias(manifold, dtype, 0)
    x = torch.zeros(3, IN, dtype=dtype, requires_grad=True)
    y = layer(x)
    assert torch.allclose(y, manifold.expmap0(layer.bias).expand(3, OUT), atol=1e-6)
    y.sum().backward()
    assert torch.isfinite(x.grad).all()


def test_gradients_are_finite_over_a_log_uniform_grid(dtype):
    for kappa in [-(10.0**e) for e in range(-8, 2)]:
        manifold = Stereographic(kappa)
        layer = layer_with_bias(manifold, dtype, 0)
        radius = 1.0 / math.sqrt(-kappa)
        fractions = torch.logspace(-8, -1e-3, 20, dtype=torch.float64).unsqueeze(-1)
        direction = torch.randn(20, IN, dtype=torch.float64)
        x = (direction / direction.norm(dim=-1, keepdim=True) * fractions * radius).to(dtype).requires_grad_(True)
        layer(x).sum().backward()
        assert torch.isfinite(x.grad).all(), kappa
        assert all(torch.isfinite(p.grad).all() for p in layer.parameters()), kappa


def test_learnable_curvature_is_followed():
    manifold = Stereographic(-1.0, learnable=True)
    layer = layer_with_bias(manifold, torch.float64, 0)
    x = ball_points((4,), torch.float64, -1.0, 0)
    layer(x).sum().backward()
    assert manifold.raw_k.grad is not None and torch.isfinite(manifold.raw_k.grad)


@pytest.mark.parametrize("method", ["lora", "relora", "sst"])
def test_low_rank_methods(method):
    layer = PoincareLinear(IN, OUT, Stereographic(-1.0), method=method, rank=2, dtype=torch.float64)
    y = layer(ball_points((3,), torch.float64, -1.0, 0))
    assert (y.norm(dim=-1) < 1).all()
    y.sum().backward()


def test_bad_arguments_are_rejected():
    with pytest.raises(TypeError, match="manifold must be a hypersst.manifolds.Stereographic, .* got Lorentz"):
        PoincareLinear(IN, OUT, Lorentz(1.0))
    with pytest.raises(ValueError, match="in_features must be an int >= 1, got 0"):
        PoincareLinear(0, OUT, Stereographic(-1.0))
    with pytest.raises(ValueError, match="dropout must be a probability"):
        PoincareLinear(IN, OUT, Stereographic(-1.0), dropout=-0.1)
    layer = PoincareLinear(IN, OUT, Stereographic(-1.0))
    with pytest.raises(ValueError, match=r"expected inputs with last dimension 6, got shape \(2, 3\)"):
        layer(torch.zeros(2, 3))
