"""Tests for hypersst.manifolds.lorentz: maps, distances, centroids and curvature handling for every k."""

import math

import geoopt
import pytest
import torch

from hypersst.manifolds import Lorentz
from hypersst.manifolds.lorentz import minkowski_inner

K_VALUES = [0.1, 0.5, 1.0, 2.0, 10.0]
SEEDS = [0, 1]
SHAPES = [(7,), (3, 5)]  # batch shapes: 2-D and batched 3-D inputs
DIM = 6  # ambient coordinates, time included
# Loose relative tolerances per dtype, for quantities computed along different routes.
RTOL = {torch.float32: 1e-4, torch.float64: 1e-10}


def residual_ratio(x: torch.Tensor, k: float) -> torch.Tensor:
    """|<x, x>_L + k| relative to k + ||x||^2 (the scale of its rounding error), computed in float64."""
    x = x.double()
    form = -x[..., 0] ** 2 + x[..., 1:].pow(2).sum(-1)
    return (form + k).abs() / (k + x.pow(2).sum(-1))


def assert_on_hyperboloid(x: torch.Tensor, k: float) -> None:
    assert torch.isfinite(x).all()
    assert (x[..., 0] > 0).all()
    worst = residual_ratio(x, k).max().item()
    assert worst <= 64 * torch.finfo(x.dtype).eps, f"off the hyperboloid by {worst:.3g} (relative)"


def tangent(shape, dtype, seed, norms=None):
    gen = torch.Generator().manual_seed(seed)
    u = torch.randn(*shape, DIM, generator=gen, dtype=torch.float64)
    u[..., 0] = 0.0
    if norms is not None:
        u = u / u.norm(dim=-1, keepdim=True) * norms
    return u.to(dtype)


@pytest.mark.parametrize("k", K_VALUES)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("seed", SEEDS)
def test_expmap0_on_manifold_and_logmap0_inverts_it(dtype, k, shape, seed):
    manifold = Lorentz(k)
    u = tangent(shape, dtype, seed)
    x = manifold.expmap0(u)
    assert x.dtype == dtype and x.shape == u.shape
    assert_on_hyperboloid(x, k)
    back = manifold.logmap0(x)
    assert torch.allclose(back, u, rtol=RTOL[dtype], atol=RTOL[dtype])
    assert (back[..., 0] == 0).all()
    # and the other way round, starting from points
    assert torch.allclose(manifold.expmap0(manifold.logmap0(x)), x, rtol=RTOL[dtype], atol=RTOL[dtype] * math.sqrt(k))


@pytest.mark.parametrize("k", K_VALUES)
def test_maps_match_geoopt_in_float64(k):
    manifold, reference = Lorentz(k), geoopt.Lorentz(torch.tensor(k, dtype=torch.float64))
    u = tangent((4, 3), torch.float64, seed=3)
    x, y = manifold.expmap0(u), manifold.expmap0(tangent((4, 3), torch.float64, seed=4))
    assert torch.allclose(x, reference.expmap0(u), rtol=1e-12, atol=1e-12)
    assert torch.allclose(manifold.logmap0(x), reference.logmap0(x), rtol=1e-9, atol=1e-9)
    assert torch.allclose(manifold.dist(x, y), reference.dist(x, y), rtol=1e-9, atol=1e-9)
    assert torch.allclose(manifold.dist0(x), reference.dist0(x), rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("k", K_VALUES)
def test_poincare_maps_are_isometries_onto_the_ball_of_radius_sqrt_k(dtype, k):
    manifold = Lorentz(k)
    ball = geoopt.Stereographic(torch.tensor(-1.0 / k, dtype=torch.float64))
    # geoopt's ball distance saturates near the boundary, so keep the points within a few units of the origin
    x = manifold.expmap0(0.5 * math.sqrt(k) * tangent((5, 4), torch.float64, seed=0))
    y = manifold.expmap0(0.5 * math.sqrt(k) * tangent((5, 4), torch.float64, seed=1))
    px, py = manifold.to_poincare(x), manifold.to_poincare(y)
    assert px.shape == (5, 4, DIM - 1)
    assert (px.norm(dim=-1) < math.sqrt(k)).all()
    assert torch.allclose(ball.dist(px, py), manifold.dist(x, y), rtol=1e-9)
    xd = x.to(dtype)
    round_trip = manifold.from_poincare(manifold.to_poincare(xd))
    assert round_trip.dtype == dtype
    assert torch.allclose(round_trip, xd, rtol=RTOL[dtype] * 10, atol=RTOL[dtype] * math.sqrt(k))


@pytest.mark.parametrize("k", K_VALUES)
def test_lorentz_sqdist_is_minus_2k_minus_2_inner(k):
    manifold = Lorentz(k)
    x = manifold.expmap0(tangent((6,), torch.float64, seed=0))
    y = manifold.expmap0(tangent((6,), torch.float64, seed=1))
    sq = manifold.lorentz_sqdist(x, y)
    expected = -2 * k - 2 * (-(x[:, 0] * y[:, 0]) + (x[:, 1:] * y[:, 1:]).sum(-1))
    assert torch.allclose(sq, expected, rtol=1e-14, atol=1e-12)
    d = manifold.dist(x, y)
    assert torch.allclose(sq, 2 * k * (torch.cosh(d / math.sqrt(k)) - 1), rtol=1e-9)
    assert (sq >= 0).all()


@pytest.mark.parametrize("k", K_VALUES)
def test_dist_keeps_relative_accuracy_for_close_points_in_float32(k):
    manifold = Lorentz(k)
    u = tangent((8,), torch.float64, seed=5)
    delta = tangent((8,), torch.float64, seed=6, norms=1e-4 * math.sqrt(k))
    x64, y64 = manifold.expmap0(u), manifold.expmap0(u + delta)
    reference = manifold.dist(x64, y64)
    d32 = manifold.dist(x64.float(), y64.float())
    assert torch.allclose(d32.double(), reference, rtol=0.05)


@pytest.mark.parametrize("k", K_VALUES)
def test_normalize_timelike_and_centroid(dtype, k):
    manifold = Lorentz(k)
    # 4 groups of 5 points within a few curvature radii of the origin: farther out, float32 cannot represent a
    # point accurately enough for -<a, a>_L (a difference of numbers of size x_0^2) to keep any digits
    x = manifold.expmap0(math.sqrt(k) * tangent((4, 5), torch.float64, seed=0)).to(dtype)
    # rescaling a point by a positive factor and normalizing gives the point back
    assert torch.allclose(manifold.normalize_timelike(3.5 * x), x, rtol=RTOL[dtype], atol=RTOL[dtype])
    # the centroid of a single point is that point
    assert torch.allclose(manifold.centroid(x[:, :1]), x[:, 0], rtol=RTOL[dtype], atol=RTOL[dtype])
    weight = torch.rand(4, 5, dtype=dtype, generator=torch.Generator().manual_seed(1))
    c = manifold.centroid(x, weight)
    assert c.shape == (4, DIM)
    assert_on_hyperboloid(c, k)
    matrix = torch.rand(3, 5, dtype=dtype, generator=torch.Generator().manual_seed(2))
    many = manifold.centroid(x[0], matrix)
    assert many.shape == (3, DIM)
    assert torch.allclose(manifold.centroid(x[0], matrix.to_sparse()), many, rtol=RTOL[dtype], atol=RTOL[dtype])
    assert torch.allclose(many[1], manifold.centroid(x[0], matrix[1]), rtol=RTOL[dtype], atol=RTOL[dtype])


@pytest.mark.parametrize("k", K_VALUES)
def test_centroid_minimizes_weighted_lorentz_sqdist(k):
    manifold = Lorentz(k)
    x = manifold.expmap0(tangent((6,), torch.float64, seed=3))
    weight = torch.rand(6, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    c = manifold.centroid(x, weight)

    def objective(point):
        return (weight * manifold.lorentz_sqdist(point.unsqueeze(0), x)).sum()

    best = objective(c)
    for seed in range(10):
        step = manifold.proju(c, tangent((), torch.float64, seed=10 + seed, norms=1e-3))
        assert objective(manifold.expmap(c, step)) > best


def test_centroid_at_k1_matches_hybonet_midpoint():
    manifold = Lorentz(1.0)
    x = manifold.expmap0(tangent((5,), torch.float64, seed=0))
    weight = torch.rand(2, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    total = weight @ x
    denom = (-(total[:, 0] ** 2) + total[:, 1:].pow(2).sum(-1)).abs().clamp_min(1e-8).sqrt()
    assert torch.allclose(manifold.centroid(x, weight), total / denom.unsqueeze(-1), rtol=1e-13)


def test_centroid_rejects_bad_weight_shape():
    manifold = Lorentz(1.0)
    x = manifold.origin(2, 3, DIM, dtype=torch.float64)
    with pytest.raises(ValueError, match="centroid: weight must have"):
        manifold.centroid(x, torch.ones(2, 2, 2, 3, dtype=torch.float64))


@pytest.mark.parametrize("k", K_VALUES)
def test_expmap_logmap_at_any_point_and_transport(k):
    manifold = Lorentz(k)
    x = manifold.expmap0(math.sqrt(k) * tangent((5,), torch.float64, seed=0))
    y = manifold.expmap0(math.sqrt(k) * tangent((5,), torch.float64, seed=1))
    v = manifold.logmap(x, y)
    assert torch.allclose(minkowski_inner(x, v), torch.zeros(5, dtype=torch.float64), atol=1e-9)
    assert torch.allclose(manifold.norm(v), manifold.dist(x, y), rtol=1e-9)
    assert torch.allclose(manifold.expmap(x, v), y, rtol=1e-8, atol=1e-8)
    w = manifold.proju(x, tangent((5,), torch.float64, seed=2))
    moved = manifold.transp(x, y, w)
    assert torch.allclose(minkowski_inner(y, moved), torch.zeros(5, dtype=torch.float64), atol=1e-9)
    assert torch.allclose(manifold.norm(moved), manifold.norm(w), rtol=1e-9)
    assert torch.equal(manifold.logmap(x, x), torch.zeros_like(x))
    at_origin = manifold.logmap0(y)
    origin = manifold.origin(5, DIM, dtype=torch.float64)
    assert torch.allclose(manifold.transp0(x, at_origin), manifold.transp(origin, x, at_origin))
    assert torch.allclose(manifold.transp0back(x, manifold.transp0(x, at_origin)), at_origin, rtol=1e-8, atol=1e-8)


def test_inner_two_and_three_argument_forms():
    manifold = Lorentz(2.0)
    x = manifold.origin(3, DIM, dtype=torch.float64)
    u, v = tangent((3,), torch.float64, seed=0), tangent((3,), torch.float64, seed=1)
    assert torch.allclose(manifold.inner(x, x), torch.full((3,), -2.0, dtype=torch.float64))
    assert torch.allclose(manifold.inner(x, u, v), (u * v).sum(-1))
    assert torch.allclose(manifold.component_inner(x, u), (u * u).sum(-1, keepdim=True))


def test_egrad2rgrad_is_tangent_and_leaves_the_gradient_unchanged():
    manifold = Lorentz(0.5)
    x = manifold.expmap0(tangent((4,), torch.float64, seed=0))
    grad = torch.randn(4, DIM, dtype=torch.float64)
    before = grad.clone()
    rgrad = manifold.egrad2rgrad(x, grad)
    assert torch.equal(grad, before)
    tolerance = 1e-14 * rgrad.abs().max() * x.abs().max()
    assert torch.allclose(minkowski_inner(x, rgrad), torch.zeros(4, dtype=torch.float64), atol=tolerance)


@pytest.mark.parametrize("k", [0.1, 10.0])
def test_riemannian_adam_keeps_a_parameter_on_the_manifold(k):
    torch.manual_seed(0)
    manifold = Lorentz(k)
    target = manifold.expmap0(tangent((3,), torch.float64, seed=1))
    point = geoopt.ManifoldParameter(manifold.origin(3, DIM, dtype=torch.float64), manifold=manifold)
    optimizer = geoopt.optim.RiemannianAdam([point], lr=0.05)
    start = manifold.dist(point, target).sum().item()
    for _ in range(200):
        optimizer.zero_grad()
        manifold.dist(point, target).pow(2).sum().backward()
        optimizer.step()
        assert_on_hyperboloid(point.detach(), k)
    assert manifold.dist(point, target).sum().item() < 0.1 * start


def log_uniform(low, high, count):
    return torch.logspace(math.log10(low), math.log10(high), count, dtype=torch.float64)


@pytest.mark.parametrize("k", K_VALUES)
def test_gradients_are_finite_over_a_log_uniform_grid_of_norms(dtype, k):
    manifold = Lorentz(k)
    # tangent lengths from 1e-8 to 60 sqrt(k): cosh(60) fits in float32
    norms = log_uniform(1e-8, 60.0, 25).unsqueeze(-1) * math.sqrt(k)
    u = tangent((25,), torch.float64, seed=0, norms=norms).to(dtype).requires_grad_(True)
    x = manifold.expmap0(u)
    other = manifold.expmap0(tangent((25,), dtype, seed=1))
    loss = manifold.logmap0(x).sum() + manifold.dist0(x).sum() + manifold.dist(x, other).sum()
    loss = loss + manifold.lorentz_sqdist(x, other).sum() * 1e-30 + manifold.to_poincare(x).sum()
    (grad,) = torch.autograd.grad(loss, u)
    assert torch.isfinite(grad).all()


@pytest.mark.parametrize("k", K_VALUES)
def test_origin_and_huge_norms_give_no_nan_in_float32(k):
    manifold = Lorentz(k)
    zero = torch.zeros(2, DIM, requires_grad=True)
    origin = manifold.expmap0(zero)
    assert torch.allclose(origin, manifold.origin(2, DIM))
    (manifold.logmap0(origin).sum() + manifold.dist0(origin).sum()).backward()
    assert torch.isfinite(zero.grad).all()
    assert torch.equal(manifold.logmap0(manifold.origin(2, DIM)), torch.zeros(2, DIM))
    space = torch.randn(4, DIM) * 1e30
    far = manifold.projx(space)
    assert torch.isfinite(far).all()
    for value in (manifold.logmap0(far), manifold.dist0(far), manifold.to_poincare(far)):
        assert torch.isfinite(value).all()
    assert (manifold.to_poincare(far).norm(dim=-1) <= math.sqrt(k) * (1 + 1e-6)).all()


def test_float32_inputs_stay_float32_and_float64_gets_the_exact_curvature():
    manifold = Lorentz(0.1)
    u32 = tangent((4,), torch.float32, seed=0)
    assert manifold.expmap0(u32).dtype == torch.float32
    x32 = manifold.expmap0(u32)
    values = (manifold.transp0(x32, u32), manifold.transp0back(x32, u32), manifold.logmap(x32, x32))
    for value in values + (manifold.dist(x32, x32),):
        assert value.dtype == torch.float32
    x64 = manifold.expmap0(u32.double())
    assert residual_ratio(x64, 0.1).max() < 1e-14  # exact 0.1, not the float32-rounded value


def test_check_point_accepts_points_and_names_the_largest_violation(dtype):
    manifold = Lorentz(2.0)
    x = manifold.expmap0(tangent((5,), dtype, seed=0))
    manifold.check_point(x)
    bad = x.clone()
    bad[2, 1] += 0.5
    with pytest.raises(ValueError, match=r"\|<x, x>_L \+ k\| = .* exceeds the tolerance"):
        manifold.check_point(bad)
    with pytest.raises(ValueError, match="upper sheet"):
        manifold.check_point(-x)
    bad[0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN or infinite"):
        manifold.check_point(bad)
    with pytest.raises(ValueError, match="exceeds the tolerance 1e-20"):
        manifold.check_point(x + 1e-3, atol=1e-20)
    with pytest.raises(TypeError, match="floating tensor"):
        manifold.check_point(torch.ones(2, 3, dtype=torch.long))


@pytest.mark.parametrize("learnable", [False, True])
def test_dtype_casts_keep_the_exact_curvature(learnable):
    manifold = Lorentz(0.1, learnable=learnable)
    model = torch.nn.Sequential(torch.nn.Linear(3, 3), manifold)
    model.float()
    assert model[0].weight.dtype == torch.float32
    assert manifold.k.dtype == torch.float64
    model.half().double()
    assert model[0].weight.dtype == torch.float64
    assert manifold.k.item() == pytest.approx(0.1, rel=1e-15, abs=0)
    x = manifold.expmap0(tangent((4,), torch.float64, seed=0))
    assert residual_ratio(x, 0.1).max() < 1e-14
    assert manifold.expmap0(tangent((4,), torch.float32, seed=0)).dtype == torch.float32


def test_dtype_cast_keeps_a_learnable_curvature_trainable():
    manifold = Lorentz(0.5, learnable=True)
    optimizer = torch.optim.Adam(manifold.parameters(), lr=0.01)
    manifold.expmap0(tangent((4,), torch.float64, seed=0)).sum().backward()
    torch.nn.Sequential(manifold).float()
    assert manifold.raw_k.grad.dtype == torch.float64
    optimizer.step()
    manifold.expmap0(tangent((4,), torch.float32, seed=1)).sum().backward()
    optimizer.step()
    assert torch.isfinite(manifold.k)


@pytest.mark.parametrize("cast", ["float", "half"])
def test_dtype_cast_keeps_the_exact_gradient(cast):
    manifold = Lorentz(0.3, learnable=True)
    manifold.raw_k.grad = torch.tensor(0.123456789, dtype=torch.float64)
    getattr(torch.nn.Sequential(manifold), cast)()
    assert manifold.raw_k.grad.dtype == torch.float64
    assert manifold.raw_k.grad.item() == 0.123456789


def test_bool_tensors_are_not_curvatures():
    with pytest.raises(TypeError, match="k must be a real number, got a tensor of bools"):
        Lorentz(torch.tensor(True))


def test_numpy_values_are_real_numbers():
    np = pytest.importorskip("numpy")
    for value in (np.float32(0.5), np.float64(0.5), np.int64(2)):
        assert Lorentz(value).k.item() == float(value)
    with pytest.raises(TypeError, match="learnable must be a bool, got numpy.bool"):
        Lorentz(1.0, learnable=np.bool_(True))
    assert Lorentz(np.array(0.5)).k.item() == 0.5
    assert Lorentz(np.array([0.5])).k.item() == 0.5
    with pytest.raises(TypeError, match=r"k must be a scalar, got a numpy array of shape \(2,\)"):
        Lorentz(np.array([0.5, 1.0]))
    with pytest.raises(TypeError, match="k must be a real number, got a numpy array of bools"):
        Lorentz(np.array(True))


@pytest.mark.parametrize("k", [0.0, -1.0, -1e-9])
def test_nonpositive_k_is_rejected(k):
    with pytest.raises(ValueError, match=rf"k must be > 0 .* got k={k!r}.*Stereographic"):
        Lorentz(k)


def test_bad_curvature_kinds_are_rejected():
    with pytest.raises(TypeError, match="k must be a real number"):
        Lorentz(True)
    with pytest.raises(TypeError, match="k must be a real number"):
        Lorentz("1.0")
    with pytest.raises(ValueError, match="k must be finite"):
        Lorentz(float("nan"))
    with pytest.raises(TypeError, match="learnable must be a bool"):
        Lorentz(1.0, learnable=1)
    with pytest.raises(ValueError, match="needs 0 < min_k < k"):
        Lorentz(1e-5, learnable=True)
    with pytest.raises(ValueError, match="needs 0 < min_k < k"):
        Lorentz(1.0, learnable=True, min_k=0.0)


def test_curvature_views_and_state_dict():
    manifold = Lorentz(4.0)
    assert manifold.k.item() == 4.0
    assert manifold.curvature.item() == -0.25
    assert "k=4" in repr(manifold)
    learnable = Lorentz(0.3, learnable=True)
    assert abs(learnable.k.item() - 0.3) < 1e-12
    assert [name for name, _ in learnable.named_parameters()] == ["raw_k"]
    copy = Lorentz(0.7, learnable=True)
    copy.load_state_dict(learnable.state_dict())
    assert copy.k.item() == learnable.k.item()
    assert isinstance(manifold, geoopt.Lorentz)


@pytest.mark.parametrize("direction", [1.0, -1.0], ids=["toward_infinity", "toward_zero"])
def test_learnable_curvature_stays_valid_under_an_adversarial_objective(direction):
    manifold = Lorentz(1.0, learnable=True)
    optimizer = torch.optim.Adam(manifold.parameters(), lr=0.1)
    space = torch.randn(16, DIM - 1, dtype=torch.float64)
    for step in range(1000):
        optimizer.zero_grad()
        (-direction * torch.log(manifold.k)).backward()  # pushes k toward infinity or zero
        optimizer.step()
        k = manifold.k.item()
        assert math.isfinite(k) and k >= manifold.min_k
    assert (k > 20.0) if direction > 0 else (k < 1.01 * manifold.min_k)
    point = manifold.projx(torch.cat((torch.zeros(16, 1, dtype=torch.float64), space), dim=-1))
    assert_on_hyperboloid(point.detach(), k)


@pytest.mark.parametrize("k", [1.0, 2.0])
def test_centroid_of_far_points_stays_finite_in_float32(k):
    # Nearly equal points with time coordinates near 3,000. Rounding their float32 coordinates moves
    # x0^2 - |x_s|^2 by more than k, so without a guard some weighted sums look spacelike (NaN).
    manifold = Lorentz(k)
    generator = torch.Generator().manual_seed(0)
    direction = torch.nn.functional.normalize(torch.randn(15, generator=generator, dtype=torch.float64), dim=-1)
    jitter = 1e-6 * torch.randn(64, 15, generator=generator, dtype=torch.float64)
    space = 3000.0 * (direction + jitter)
    exact = torch.cat([torch.sqrt(k + space.pow(2).sum(-1, keepdim=True)), space], dim=-1)
    points = exact.float()
    for count in range(2, 65):
        # float32 cannot place the centroid this far out accurately, but it must stay a finite point.
        result = manifold.centroid(points[:count], torch.full((count,), 1 / count))
        assert torch.isfinite(result).all(), count
        manifold.check_point(result)
