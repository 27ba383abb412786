import geoopt
import pytest
import torch
from torch import nn

from hypersst.spectral import SSTLinear, singular_value_parameters, singular_vector_parameters

from hypersst.testing import DTYPE_TOLERANCE as TOLERANCE

SHAPES = [(12, 8), (8, 12), (10, 10)]


@pytest.mark.parametrize("in_features,out_features", SHAPES)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_from_linear_preserves_outputs(dtype, in_features, out_features, seed):
    torch.manual_seed(seed)
    linear = nn.Linear(in_features, out_features, dtype=dtype)
    layer = SSTLinear.from_linear(linear, rank=3)
    x = torch.randn(5, 2, in_features, dtype=dtype)
    torch.testing.assert_close(layer(x), linear(x), atol=TOLERANCE[dtype], rtol=0)
    torch.testing.assert_close(layer.weight, linear.weight.detach(), atol=TOLERANCE[dtype], rtol=0)


@pytest.mark.parametrize("in_features,out_features", SHAPES)
@pytest.mark.parametrize("bias", [True, False])
def test_trainable_parameter_count(in_features, out_features, bias):
    rank = 3
    layer = SSTLinear(in_features, out_features, rank, bias=bias)
    count = sum(p.numel() for p in layer.parameters() if p.requires_grad)
    k = min(in_features, out_features)
    assert count == rank * (in_features + out_features) + k + (out_features if bias else 0)


def test_factor_views_have_documented_shapes():
    layer = SSTLinear(12, 8, 3)
    assert layer.U.shape == (8, 8)
    assert layer.S.shape == (8,)
    assert layer.Vh.shape == (8, 12)
    assert layer.weight.shape == (8, 12)
    assert layer.active_indices.dtype == torch.long
    assert layer.active_indices.tolist() == [0, 1, 2]


def test_initial_factors_are_orthonormal(dtype):
    layer = SSTLinear(16, 10, 4, dtype=dtype)
    eye = torch.eye(10, dtype=dtype)
    torch.testing.assert_close(layer.U.t() @ layer.U, eye, atol=TOLERANCE[dtype] * 10, rtol=0)
    torch.testing.assert_close(layer.Vh @ layer.Vh.t(), eye, atol=TOLERANCE[dtype] * 10, rtol=0)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_one_step_changes_every_singular_value_and_only_active_vectors(dtype, seed):
    torch.manual_seed(seed)
    layer = SSTLinear(10, 7, 2, dtype=dtype)
    with torch.no_grad():
        layer.active_indices.copy_(torch.tensor([1, 4]))
        layer._load_active_from_buffers()
    before_U, before_S, before_Vh = layer.U.clone(), layer.S.detach().clone(), layer.Vh.clone()
    optimizer = torch.optim.SGD(layer.parameters(), lr=1e-2)
    x = torch.randn(32, 10, dtype=dtype)
    layer(x).pow(2).sum().backward()
    optimizer.step()
    layer.post_step_()
    assert (layer.S.detach() != before_S).all()
    changed_columns = (layer.U != before_U).any(dim=0)
    changed_rows = (layer.Vh != before_Vh).any(dim=1)
    assert torch.nonzero(changed_columns).flatten().tolist() == [1, 4]
    assert torch.nonzero(changed_rows).flatten().tolist() == [1, 4]


def test_post_step_clamps_and_renormalizes(dtype):
    torch.manual_seed(0)
    layer = SSTLinear(9, 6, 3, dtype=dtype)
    optimizer = torch.optim.SGD(layer.parameters(), lr=0.5)
    for _ in range(5):
        optimizer.zero_grad()
        (layer(torch.randn(16, 9, dtype=dtype)).sum() * 10).backward()
        optimizer.step()
        layer.post_step_()
        assert (layer.S >= 0).all()
        ones = torch.ones(3, dtype=dtype)
        torch.testing.assert_close(layer.Ut_active.norm(dim=1), ones, atol=TOLERANCE[dtype] * 10, rtol=0)
        torch.testing.assert_close(layer.Vh_active.norm(dim=1), ones, atol=TOLERANCE[dtype] * 10, rtol=0)


def test_post_step_clamps_negative_singular_values_to_zero():
    layer = SSTLinear(5, 5, 2)
    with torch.no_grad():
        layer.S.copy_(torch.tensor([2.0, -0.5, 1.0, -3.0, 0.0]))
    layer.post_step_()
    assert layer.S.tolist() == [2.0, 0.0, 1.0, 0.0, 0.0]


def _perturb_active_vectors(layer, scale=0.3):
    optimizer = torch.optim.SGD(layer.parameters(), lr=scale)
    layer(torch.randn(20, layer.in_features, dtype=layer.S.dtype)).pow(2).sum().backward()
    optimizer.step()
    layer.post_step_()


def test_resvd_preserves_weight_and_restores_orthonormality(dtype):
    torch.manual_seed(3)
    layer = SSTLinear(14, 9, 4, dtype=dtype)
    _perturb_active_vectors(layer)
    eye = torch.eye(9, dtype=dtype)
    assert (layer.U.t() @ layer.U - eye).abs().max() > 1e-3, "the update should break orthogonality"
    weight = layer.weight.clone()
    layer.resvd_()
    torch.testing.assert_close(layer.weight, weight, atol=TOLERANCE[dtype] * 10, rtol=0)
    torch.testing.assert_close(layer.U.t() @ layer.U, eye, atol=TOLERANCE[dtype] * 10, rtol=0)
    torch.testing.assert_close(layer.Vh @ layer.Vh.t(), eye, atol=TOLERANCE[dtype] * 10, rtol=0)
    assert (layer.S[:-1] >= layer.S[1:]).all()


def test_swap_preserves_weight_and_reports_changed_slots(dtype):
    torch.manual_seed(4)
    layer = SSTLinear(10, 10, 3, dtype=dtype)
    _perturb_active_vectors(layer)
    weight = layer.weight.clone()
    changed = layer.swap_(torch.tensor([1, 2, 7]))
    assert changed.tolist() == [0]
    assert sorted(layer.active_indices.tolist()) == [1, 2, 7]
    torch.testing.assert_close(layer.weight, weight, atol=TOLERANCE[dtype], rtol=0)
    assert torch.equal(layer.Ut_active[0], layer.U[:, 7])


def test_swap_rejects_duplicate_indices():
    layer = SSTLinear(6, 6, 2)
    with pytest.raises(ValueError, match=r"expected 2 distinct indices, got \[1, 1\]"):
        layer.swap_(torch.tensor([1, 1]))


def test_swap_rejects_diverged_layer():
    layer = SSTLinear(6, 6, 2)
    with torch.no_grad():
        layer.S[0] = float("nan")
    with pytest.raises(RuntimeError, match="blocks.0: S contains NaN or Inf"):
        layer.swap_(torch.tensor([2, 3]), name="blocks.0")


def test_zero_norm_active_vector_is_reported():
    layer = SSTLinear(6, 6, 2)
    with torch.no_grad():
        layer.Vh_active[1].zero_()
    layer.post_step_()
    with pytest.raises(RuntimeError, match="have zero norm"):
        layer.resvd_(name="proj")


@pytest.mark.parametrize("rank", [0, 7, -1])
def test_rank_out_of_range_raises(rank):
    with pytest.raises(ValueError, match=f"rank={rank} is out of range for a 6x9 weight"):
        SSTLinear(9, 6, rank)


def test_from_linear_rejects_other_modules():
    with pytest.raises(TypeError, match="expected an nn.Linear, got Conv1d"):
        SSTLinear.from_linear(nn.Conv1d(3, 3, 1), 1)


def test_from_linear_rejects_non_finite_weight():
    linear = nn.Linear(4, 4)
    with torch.no_grad():
        linear.weight[0, 0] = float("inf")
    with pytest.raises(ValueError, match="head.proj: weight contains NaN or Inf"):
        SSTLinear.from_linear(linear, 2, name="head.proj")


def test_wrong_input_width_raises():
    with pytest.raises(ValueError, match="expected inputs with last dimension 5, got shape"):
        SSTLinear(5, 3, 1)(torch.randn(2, 4))


def test_to_linear_matches_outputs(dtype):
    torch.manual_seed(5)
    layer = SSTLinear(7, 5, 2, dtype=dtype)
    _perturb_active_vectors(layer)
    x = torch.randn(3, 7, dtype=dtype)
    torch.testing.assert_close(layer.to_linear()(x), layer(x), atol=TOLERANCE[dtype], rtol=0)


def test_sphere_geometry_uses_manifold_parameters():
    layer = SSTLinear(8, 6, 2, vector_geometry="sphere")
    assert isinstance(layer.Ut_active, geoopt.ManifoldParameter)
    assert isinstance(layer.Vh_active.manifold, geoopt.Sphere)
    optimizer = geoopt.optim.RiemannianAdam(layer.parameters(), lr=1e-2)
    for _ in range(3):
        optimizer.zero_grad()
        layer(torch.randn(4, 8)).pow(2).sum().backward()
        optimizer.step()
        # RiemannianAdam retracts onto the sphere itself, before any renormalization.
        torch.testing.assert_close(layer.Ut_active.norm(dim=1), torch.ones(2), atol=1e-5, rtol=0)


def test_state_dict_round_trip(dtype):
    torch.manual_seed(6)
    layer = SSTLinear(8, 5, 2, dtype=dtype)
    _perturb_active_vectors(layer)
    layer.swap_(torch.tensor([3, 4]))
    clone = SSTLinear(8, 5, 2, dtype=dtype)
    clone.load_state_dict(layer.state_dict())
    x = torch.randn(4, 8, dtype=dtype)
    assert torch.equal(clone(x), layer(x))
    assert torch.equal(clone.active_indices, layer.active_indices)


def test_vector_parameters_in_module_order():
    model = nn.Sequential(SSTLinear(8, 6, 2), nn.ReLU(), nn.Linear(6, 6), SSTLinear(6, 4, 1, vector_geometry="sphere"))
    found = singular_vector_parameters(model)
    expected = [model[0].Ut_active, model[0].Vh_active, model[3].Ut_active, model[3].Vh_active]
    assert [id(param) for param in found] == [id(param) for param in expected]
    assert all(param is not model[0].S and param is not model[2].weight for param in found)


def test_vector_parameters_shared_layer_once():
    layer = SSTLinear(5, 5, 2)
    found = singular_vector_parameters(nn.Sequential(layer, layer))
    assert [id(param) for param in found] == [id(layer.Ut_active), id(layer.Vh_active)]


def test_vector_parameters_without_sst_raises():
    with pytest.raises(ValueError, match="Sequential contains no SSTLinear layer; convert it first"):
        singular_vector_parameters(nn.Sequential(nn.Linear(3, 3)))


def test_value_parameters_in_module_order():
    shared = SSTLinear(6, 6, 2)
    model = nn.Sequential(SSTLinear(8, 6, 2), nn.Linear(6, 6), shared, shared)
    found = singular_value_parameters(model)
    assert [id(param) for param in found] == [id(model[0].S), id(shared.S)]


def test_value_parameters_without_sst_raises():
    with pytest.raises(ValueError, match="singular_value_parameters: Sequential contains no SSTLinear layer"):
        singular_value_parameters(nn.Sequential(nn.Linear(3, 3)))
