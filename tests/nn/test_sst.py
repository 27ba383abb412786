"""Tests for hypersst.nn.sst: HyperSSTLinear dispatch, conversion, the zero-curvature contract and training."""

import math
import re
from pathlib import Path

import geoopt
import pytest
import torch
from torch import nn

from hypersst.config import SSTConfig
from hypersst.manifolds import Euclidean, Lorentz, PoincareBall, Stereographic
from hypersst.nn import HyperSSTLinear, LorentzLinear, PoincareLinear
from hypersst.schedule import SSTScheduler
from hypersst.spectral import SSTLinear

IN, OUT, RANK = 7, 5, 2
TOL = {torch.float32: 1e-5, torch.float64: 1e-12}


def lorentz_points(manifold, shape, dtype, seed):
    gen = torch.Generator().manual_seed(seed)
    return manifold.expmap0(torch.randn(*shape, IN, generator=gen, dtype=torch.float64)).to(dtype)


def ball_points(shape, dtype, seed, radius=1.0):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(*shape, IN, generator=gen, dtype=torch.float64)
    return (0.8 * radius * x / (1 + x.norm(dim=-1, keepdim=True))).to(dtype)


def perturb_(module, seed, size=0.2):
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in module.parameters():
            if param.requires_grad and param.dim() <= 2 and param.numel() > 1:
                param.add_(size * torch.randn(param.shape, generator=gen, dtype=param.dtype))


def test_dispatch_by_manifold():
    assert isinstance(HyperSSTLinear(IN, OUT, RANK, Lorentz(1.0)).layer, LorentzLinear)
    for manifold in (Stereographic(-1.0), PoincareBall(1.0), Stereographic(-1.0, learnable=True)):
        layer = HyperSSTLinear(IN, OUT, RANK, manifold)
        assert isinstance(layer.layer, PoincareLinear) and not layer.layer.flat
    for manifold in (Euclidean(), Stereographic(0.0)):
        layer = HyperSSTLinear(IN, OUT, RANK, manifold)
        assert layer.layer.flat and layer.linear.bias is not None
    assert isinstance(HyperSSTLinear(IN, OUT, RANK, Lorentz(1.0)).linear, SSTLinear)


def test_factor_views_are_the_inner_layers():
    layer = HyperSSTLinear(IN, OUT, RANK, Lorentz(2.0))
    inner = layer.linear
    k = min(IN, OUT)
    assert layer.U.shape == (OUT, k) and layer.S.shape == (k,) and layer.Vh.shape == (k, IN)
    assert torch.equal(layer.U, inner.U) and layer.S is inner.S and torch.equal(layer.Vh, inner.Vh)
    assert torch.equal(layer.weight, inner.weight)
    assert torch.equal(layer.active_indices, inner.active_indices) and layer.active_indices.numel() == RANK
    assert layer.rank == RANK and layer.in_features == IN and layer.out_features == OUT
    assert torch.allclose(layer.weight[:, 0], torch.zeros(OUT), atol=1e-6)  # HyboNet's zero time column


@pytest.mark.parametrize(
    "make", [lambda: Lorentz(0.5), lambda: Lorentz(3.0), lambda: Stereographic(-1.0), lambda: PoincareBall(0.2),
             lambda: Stereographic(0.0), lambda: Euclidean()],
    ids=["lorentz0.5", "lorentz3", "stereo-1", "ball0.2", "stereo0", "euclidean"],
)
@pytest.mark.parametrize("shape", [(6,), (2, 3)])
def test_from_dense_equals_the_dense_layer_at_init(dtype, make, shape):
    manifold = make()
    torch.manual_seed(0)
    if isinstance(manifold, Lorentz):
        dense = LorentzLinear(IN, OUT, manifold, dtype=dtype)
        x = lorentz_points(manifold, shape, dtype, 1)
    else:
        dense = PoincareLinear(IN, OUT, manifold, dtype=dtype)
        x = ball_points(shape, dtype, 1)
    perturb_(dense, 2)
    if getattr(dense, "bias", None) is not None:
        with torch.no_grad():
            dense.bias.normal_(0, 0.1)
    converted = HyperSSTLinear.from_dense(dense, RANK)
    assert converted.manifold is manifold
    assert torch.allclose(converted(x), dense(x), rtol=TOL[dtype] * 10, atol=TOL[dtype] * 10)


def test_from_dense_accepts_nn_linear_and_rejects_other_layers():
    linear = nn.Linear(IN, OUT, dtype=torch.float64)
    converted = HyperSSTLinear.from_dense(linear, RANK)
    x = torch.randn(4, IN, dtype=torch.float64)
    assert isinstance(converted.manifold, Euclidean)
    assert torch.allclose(converted(x), linear(x), atol=1e-13)
    with pytest.raises(TypeError, match="expected a LorentzLinear, PoincareLinear or nn.Linear, got Conv1d"):
        HyperSSTLinear.from_dense(nn.Conv1d(2, 2, 1), RANK)
    low_rank = LorentzLinear(IN, OUT, Lorentz(1.0), method="lora", rank=RANK)
    with pytest.raises(TypeError, match="inner map must be a dense nn.Linear .* got LoRALinear"):
        HyperSSTLinear.from_dense(low_rank, RANK)


def _same_factors(source: SSTLinear, target: SSTLinear) -> None:
    state = {name: value for name, value in source.state_dict().items() if name in target.state_dict()}
    target.load_state_dict(state, strict=False)


@pytest.mark.parametrize("make", [Euclidean, lambda: Stereographic(0.0)], ids=["euclidean", "stereographic0"])
@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("shape", [(5,), (2, 4)])
def test_zero_curvature_matches_sstlinear_outputs_and_gradients(make, seed, shape):
    torch.manual_seed(seed)
    reference = SSTLinear(IN, OUT, RANK, dtype=torch.float64)
    perturb_(reference, seed)
    layer = HyperSSTLinear(IN, OUT, RANK, make(), dtype=torch.float64)
    _same_factors(reference, layer.linear)
    x = torch.randn(*shape, IN, dtype=torch.float64)
    x_ref, x_layer = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    weights = torch.randn(*shape, OUT, dtype=torch.float64)
    out_ref, out_layer = reference(x_ref), layer(x_layer)
    assert torch.allclose(out_layer, out_ref, rtol=0, atol=1e-12)
    (out_ref * weights).sum().backward()
    (out_layer * weights).sum().backward()
    assert torch.allclose(x_layer.grad, x_ref.grad, rtol=0, atol=1e-12)
    ref_params = dict(reference.named_parameters())
    for name, param in layer.linear.named_parameters():
        assert torch.allclose(param.grad, ref_params[name].grad, rtol=0, atol=1e-12), name


def test_outputs_converge_continuously_to_sstlinear_as_kappa_tends_to_zero():
    torch.manual_seed(0)
    reference = SSTLinear(IN, OUT, RANK, dtype=torch.float64)
    perturb_(reference, 0)
    x = torch.randn(12, IN, dtype=torch.float64)
    expected = reference(x)
    errors = []
    for exponent in range(1, 9):
        layer = HyperSSTLinear(IN, OUT, RANK, Stereographic(-(10.0**-exponent)), dtype=torch.float64)
        _same_factors(reference, layer.linear)
        with torch.no_grad():
            layer.layer.bias.copy_(reference.bias)
        out = layer(x)
        assert torch.isfinite(out).all()
        errors.append((out - expected).abs().max().item())
    assert all(later < earlier for earlier, later in zip(errors, errors[1:])), errors
    assert errors[-1] < 1e-6
    # no jump at zero: the last negative curvature is already as close to kappa = 0 as the step before it
    assert errors[-1] < 0.2 * errors[-2]


@pytest.mark.parametrize("geometry", ["euclidean", "sphere"])
@pytest.mark.parametrize("optimizer_name", ["adam", "riemannian_adam"])
@pytest.mark.parametrize("make", [lambda: Lorentz(1.0), lambda: Stereographic(-1.0)], ids=["lorentz", "poincare"])
def test_trains_with_both_vector_geometries_and_optimizers(geometry, optimizer_name, make):
    torch.manual_seed(0)
    manifold = make()
    model = nn.Sequential(
        HyperSSTLinear(IN, 6, RANK, manifold, vector_geometry=geometry, dtype=torch.float64),
        HyperSSTLinear(6, 4, RANK, manifold, vector_geometry=geometry, dtype=torch.float64),
    )
    if isinstance(manifold, Lorentz):
        x = lorentz_points(manifold, (32,), torch.float64, 1)
        target = lorentz_points(Lorentz(1.0), (32,), torch.float64, 2)[..., :4]
        target = manifold.projx(target)
    else:
        x = ball_points((32,), torch.float64, 1)
        target = ball_points((32,), torch.float64, 2)[..., :4]
    if optimizer_name == "adam":
        optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    else:
        optimizer = geoopt.optim.RiemannianAdam(model.parameters(), lr=0.01)
    scheduler = SSTScheduler(model, optimizer, SSTConfig(rank=RANK, steps_per_iteration=10, warmup_steps=2))
    losses = []
    for _ in range(60):
        optimizer.zero_grad()
        loss = manifold.dist(model(x), target).pow(2).mean()
        loss.backward()
        optimizer.step()
        scheduler.step()
        losses.append(loss.item())
    assert all(math.isfinite(v) for v in losses)
    assert min(losses[-10:]) < 0.9 * losses[0], losses[::10]
    for layer in model:
        inner = layer.linear
        assert torch.isfinite(layer.weight).all()
        assert torch.allclose(inner.Ut_active.detach().norm(dim=-1), torch.ones(RANK, dtype=torch.float64), atol=1e-6)
        if geometry == "sphere":
            assert isinstance(inner.Vh_active, geoopt.ManifoldParameter)
    y = model(x)
    if isinstance(manifold, Lorentz):
        manifold.check_point(y)
    else:
        assert (y.norm(dim=-1) < 1).all()


def test_state_dict_round_trip():
    layer = HyperSSTLinear(IN, OUT, RANK, Lorentz(1.5), dtype=torch.float64)
    perturb_(layer, 0)
    copy = HyperSSTLinear(IN, OUT, RANK, Lorentz(1.5), dtype=torch.float64)
    copy.load_state_dict(layer.state_dict())
    x = lorentz_points(Lorentz(1.5), (4,), torch.float64, 0)
    assert torch.equal(copy(x), layer(x))


def test_bad_arguments_are_rejected():
    layer = HyperSSTLinear(IN, OUT, RANK, Lorentz(1.0))
    with pytest.raises(ValueError, match=r"HyperSSTLinear: expected inputs with last dimension 7 \(ambient"):
        layer(torch.ones(3, IN + 1))
    flat = HyperSSTLinear(IN, OUT, RANK, Euclidean())
    with pytest.raises(ValueError, match=r"HyperSSTLinear: expected inputs with last dimension 7, got shape \(3, 2\)"):
        flat(torch.ones(3, 2))
    with pytest.raises(TypeError, match="manifold must be a hypersst.manifolds.Lorentz, .* got Sphere"):
        HyperSSTLinear(IN, OUT, RANK, geoopt.Sphere())
    with pytest.raises(ValueError, match="time_offset only apply to a Lorentz manifold"):
        HyperSSTLinear(IN, OUT, RANK, Stereographic(-1.0), time_offset=2.0)
    with pytest.raises(ValueError, match="rank"):
        HyperSSTLinear(IN, OUT, 0, Lorentz(1.0))


def test_geometry_guide_example_runs(capsys):
    guide = Path(__file__).resolve().parents[2] / "docs" / "geometry.md"
    (code,) = re.findall(r"```python\n(.*?)```", guide.read_text(encoding="utf-8"), flags=re.S)
    exec(compile(code, str(guide), "exec"), {})
    assert capsys.readouterr().out.startswith("final loss ")


@pytest.mark.parametrize(
    ("manifold", "kind"), [(Lorentz(0.5), LorentzLinear), (Stereographic(-2.0), PoincareLinear), (Euclidean(), PoincareLinear)]
)
def test_merge_unwraps_to_the_plain_layer(manifold, kind):
    from hypersst import merge_lowrank

    torch.manual_seed(0)
    model = nn.Sequential(HyperSSTLinear(5, 4, rank=2, manifold=manifold, dtype=torch.float64))
    tangent = 0.3 * torch.randn(3, 5, dtype=torch.float64)
    if isinstance(manifold, Euclidean):
        x = tangent
    else:
        if isinstance(manifold, Lorentz):
            tangent[:, 0] = 0.0  # a tangent vector at the origin has no time component
        x = manifold.expmap0(tangent)
    expected = model(x)
    merged = merge_lowrank(model)
    assert merged is model
    assert type(model[0]) is kind
    assert type(model[0].linear) is nn.Linear
    torch.testing.assert_close(model(x), expected, rtol=1e-12, atol=1e-12)


def test_merge_single_layer_unwraps():
    from hypersst import merge_lowrank

    layer = HyperSSTLinear(5, 4, rank=2, manifold=Stereographic(-1.0))
    plain = merge_lowrank(layer)
    assert type(plain) is PoincareLinear
    assert type(plain.linear) is nn.Linear
