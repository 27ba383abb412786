"""Tests for hypersst.manifolds.stereographic: signed curvature, the flat limit and dtype handling."""

import math

import geoopt
import pytest
import torch

from hypersst.manifolds import Euclidean, PoincareBall, Stereographic

KAPPAS = [-10.0, -1.0, -0.1, -1e-6, 0.0]
SHAPES = [(7,), (3, 5)]
DIM = 5
RTOL = {torch.float32: 1e-4, torch.float64: 1e-10}


def points(shape, dtype, kappa, seed, fraction=0.9):
    """Random points at up to ``fraction`` of the ball radius (plain Gaussian points when flat)."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(*shape, DIM, generator=gen, dtype=torch.float64)
    if kappa < 0:
        radius = 1.0 / math.sqrt(-kappa)
        scale = fraction * radius * torch.rand(*shape, 1, generator=gen, dtype=torch.float64)
        x = x / x.norm(dim=-1, keepdim=True) * scale
    return x.to(dtype)


@pytest.mark.parametrize("kappa", KAPPAS)
@pytest.mark.parametrize("shape", SHAPES)
def test_expmap0_logmap0_inverse_and_inside_the_ball(dtype, kappa, shape):
    manifold = Stereographic(kappa)
    x = points(shape, dtype, kappa, seed=0)
    u = manifold.logmap0(x)
    assert u.dtype == dtype
    back = manifold.expmap0(u)
    scale = 1.0 if kappa == 0 else 1.0 / math.sqrt(-kappa)
    assert torch.allclose(back, x, rtol=RTOL[dtype] * 10, atol=RTOL[dtype] * scale)
    big = manifold.expmap0(torch.randn(*shape, DIM, dtype=dtype) * 50 * scale)
    assert torch.isfinite(big).all()
    if kappa < 0:
        assert (big.norm(dim=-1) < scale).all()
        manifold.check_point(big)


def test_zero_curvature_operations_are_euclidean():
    manifold = Stereographic(0.0)
    x, y = torch.randn(4, DIM, dtype=torch.float64), torch.randn(4, DIM, dtype=torch.float64)
    assert manifold.is_flat
    assert torch.equal(manifold.mobius_add(x, y), x + y)
    assert torch.allclose(manifold.expmap0(x), x, rtol=1e-15, atol=0)
    assert torch.allclose(manifold.logmap0(x), x, rtol=1e-15, atol=0)
    # geoopt's stereographic metric is (2 / (1 + kappa ||x||^2))^2 times the Euclidean one: at kappa = 0 the
    # maps are the identity and Möbius addition is +, but distances are twice the Euclidean ones
    assert torch.allclose(manifold.dist(x, y), 2 * (x - y).norm(dim=-1), rtol=1e-14)


@pytest.mark.parametrize("kappa", [-1.0, -0.1])
def test_matches_geoopt_in_float64(kappa):
    manifold = Stereographic(kappa)
    reference = geoopt.Stereographic(torch.tensor(kappa, dtype=torch.float64))
    x, y = points((6,), torch.float64, kappa, 0), points((6,), torch.float64, kappa, 1)
    assert torch.allclose(manifold.dist(x, y), reference.dist(x, y), rtol=1e-12)
    assert torch.allclose(manifold.mobius_add(x, y), reference.mobius_add(x, y), rtol=1e-12)


def test_float32_inputs_stay_float32():
    manifold = Stereographic(-0.3)
    x = points((4,), torch.float32, -0.3, 0)
    for value in (manifold.expmap0(x), manifold.logmap0(x), manifold.mobius_add(x, x), manifold.dist(x, x)):
        assert value.dtype == torch.float32


def test_poincare_ball_is_kappa_minus_c():
    ball = PoincareBall(2.5)
    assert ball.k.item() == -2.5 and ball.c.item() == 2.5
    assert isinstance(ball, geoopt.PoincareBall) and isinstance(ball, Stereographic)
    assert PoincareBall(0.0).is_flat
    learnable = PoincareBall(0.5, learnable=True)
    assert abs(learnable.c.item() - 0.5) < 1e-12
    x = points((3,), torch.float64, -2.5, 0)
    assert torch.allclose(ball.dist(x, 0.5 * x), Stereographic(-2.5).dist(x, 0.5 * x), rtol=1e-14)


def test_curvature_views():
    assert Stereographic(-2.0).curvature.item() == -2.0
    assert Euclidean().curvature.item() == 0.0
    assert "k=-2" in repr(Stereographic(-2.0))


def test_bad_arguments_are_rejected():
    with pytest.raises(ValueError, match=r"k is the sectional curvature and must be <= 0, got k=0.5"):
        Stereographic(0.5)
    with pytest.raises(ValueError, match="learnable curvature .* cannot start at k=0.0"):
        Stereographic(0.0, learnable=True)
    with pytest.raises(ValueError, match=r"c = -kappa must be >= 0, got c=-1.0"):
        PoincareBall(-1.0)
    with pytest.raises(ValueError, match="cannot start at c=0.0"):
        PoincareBall(0.0, learnable=True)
    with pytest.raises(ValueError, match="k must be finite"):
        Stereographic(float("-inf"))
    with pytest.raises(TypeError, match="learnable must be a bool"):
        Stereographic(-1.0, learnable="yes")
    with pytest.raises(ValueError, match="ndim must be a non-negative int"):
        Euclidean(-1)


def test_check_point_rejects_points_outside_the_ball():
    manifold = Stereographic(-4.0)
    manifold.check_point(torch.full((2, 3), 0.1))
    with pytest.raises(ValueError, match=r"largest norm 0.6 is not below the ball radius 0.5"):
        manifold.check_point(torch.tensor([[0.6, 0.0]]))
    with pytest.raises(ValueError, match="NaN or infinite"):
        manifold.check_point(torch.tensor([[float("nan"), 0.0]]))


@pytest.mark.parametrize("direction", [1.0, -1.0], ids=["toward_flat", "toward_infinite_curvature"])
def test_learnable_curvature_stays_valid_under_an_adversarial_objective(direction):
    manifold = Stereographic(-1.0, learnable=True)
    optimizer = torch.optim.Adam(manifold.parameters(), lr=0.1)
    u = torch.randn(16, DIM, dtype=torch.float64)
    for _ in range(1000):
        optimizer.zero_grad()
        # direction 1 pushes kappa up toward 0, -1 down toward -infinity
        (direction * torch.log(-manifold.k)).backward()
        optimizer.step()
        kappa = manifold.k.item()
        assert math.isfinite(kappa) and kappa <= 0.0
    assert (kappa > -1e-5) if direction > 0 else (kappa < -20.0)
    x = manifold.expmap0(u)
    assert torch.isfinite(x).all()
    if kappa < 0:
        assert (x.norm(dim=-1) < 1.0 / math.sqrt(-kappa)).all()


def test_riemannian_adam_on_the_ball():
    manifold = Stereographic(-1.0)
    target = points((3,), torch.float64, -1.0, 1)
    point = geoopt.ManifoldParameter(torch.zeros(3, DIM, dtype=torch.float64), manifold=manifold)
    optimizer = geoopt.optim.RiemannianAdam([point], lr=0.05)
    start = manifold.dist(point, target).sum().item()
    for _ in range(200):
        optimizer.zero_grad()
        manifold.dist(point, target).pow(2).sum().backward()
        optimizer.step()
    assert manifold.dist(point, target).sum().item() < 0.1 * start
    manifold.check_point(point)


@pytest.mark.parametrize("manifold", [Stereographic(-0.1), Stereographic(-0.1, learnable=True), PoincareBall(0.1)])
def test_dtype_casts_keep_the_exact_curvature(manifold):
    model = torch.nn.Sequential(torch.nn.Linear(3, 3), manifold)
    model.float()
    assert manifold.k.dtype == torch.float64
    model.double()
    assert manifold.k.item() == pytest.approx(-0.1, rel=1e-15, abs=0)
