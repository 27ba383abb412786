"""Sparse features in HyboNet: the input mapping and the first layer keep them sparse."""

import math
import warnings

import pytest
import torch

from hypersst.manifolds import Lorentz
from hypersst.models import HyboNetLP, HyboNetNC, lp_margin_loss, nc_margin_loss, normalized_adjacency

METHODS = ["full", "lora", "relora", "sst"]
TOL = {torch.float32: dict(rtol=1e-5, atol=1e-5), torch.float64: dict(rtol=1e-12, atol=1e-12)}
MODEL_TOL = {torch.float32: dict(rtol=1e-4, atol=1e-5), torch.float64: dict(rtol=1e-10, atol=1e-11)}


def to_layout(x, layout):
    # torch warns that its CSR support is in beta. These tests silence that warning.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return x.to_sparse_coo() if layout == "coo" else x.to_sparse_csr()


def sparse_identity(num_nodes, dtype=torch.float32):
    diagonal = torch.arange(num_nodes).repeat(2, 1)
    ones = torch.ones(num_nodes, dtype=dtype)
    return torch.sparse_coo_tensor(diagonal, ones, (num_nodes, num_nodes), check_invariants=True).coalesce()


def random_graph(num_nodes, seed):
    gen = torch.Generator().manual_seed(seed)
    pairs = torch.randint(0, num_nodes, (2, 3 * num_nodes), generator=gen)
    pairs = pairs[:, pairs[0] != pairs[1]]
    return torch.cat([pairs, pairs.flip(0)], dim=1)


def features_with_special_rows(dtype, seed):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(6, 9, generator=gen, dtype=torch.float64)
    x = x * (torch.rand(6, 9, generator=gen, dtype=torch.float64) < 0.4)
    x[1] = 0.0  # a zero row maps to the origin
    x[2, 3] = 7.0  # above the cap of 3
    x[4, :3] = torch.tensor([2.0, -1.0, 1.5], dtype=torch.float64)  # below the cap
    return x.to(dtype)


@pytest.mark.parametrize("k", [0.5, 1.0, 4.0])
@pytest.mark.parametrize("input_max_norm", [None, 3.0])
@pytest.mark.parametrize("layout", ["coo", "csr"])
@pytest.mark.parametrize("seed", [0, 1])
def test_sparse_embedding_matches_dense(dtype, k, input_max_norm, layout, seed):
    encoder = HyboNetLP(9, dim=4, num_layers=1, manifold=Lorentz(k), input_max_norm=input_max_norm).encoder
    x = features_with_special_rows(dtype, seed)
    expected = encoder.embed_input(x)
    points = encoder.embed_input(to_layout(x, layout))
    assert points.layout == torch.sparse_coo
    assert points.is_coalesced()
    assert points.shape == (6, 10)
    assert points.dtype == dtype
    dense = points.to_dense()
    torch.testing.assert_close(dense, expected, rtol=TOL[dtype]["rtol"], atol=TOL[dtype]["atol"] * math.cosh(7.0))
    torch.testing.assert_close(dense[1], torch.tensor([math.sqrt(k)] + [0.0] * 9, dtype=dtype), **TOL[dtype])
    if input_max_norm is not None:
        capped_distance = math.sqrt(k) * math.acosh(float(dense[2, 0]) / math.sqrt(k))
        assert capped_distance == pytest.approx(3.0, rel=1e-4)
    # one stored time coordinate per row, plus the stored feature values
    assert points.values().numel() == 6 + int((x != 0).sum())


def test_sparse_embedding_overflow_names_cap():
    encoder = HyboNetLP(3, dim=4, num_layers=1, manifold=Lorentz()).encoder
    huge = torch.sparse_coo_tensor(torch.tensor([[0], [1]]), torch.tensor([500.0]), (2, 3), check_invariants=True)
    with pytest.raises(RuntimeError, match="HyboNetEncoder: expmap0 of the input features overflowed.*input_max_norm"):
        encoder.embed_input(huge)


def test_unsupported_sparse_features_raise():
    encoder = HyboNetLP(4, dim=4, num_layers=1, manifold=Lorentz()).encoder
    x = torch.eye(4)
    with pytest.raises(TypeError, match="HyboNetEncoder: sparse features must use the COO or CSR layout, got torch.sparse_csc"):
        encoder.embed_input(x.to_sparse_csc())
    with pytest.raises(ValueError, match=r"HyboNetEncoder: sparse features must be a 2-D \(N, F\) matrix.*\(2, 4, 4\)"):
        encoder.embed_input(torch.stack([x, x]).to_sparse())
    with pytest.raises(ValueError, match="with 1 dense dimensions"):
        encoder.embed_input(x.to_sparse(sparse_dim=1))


def model_loss(model, task, features, adjacency, labels, pairs):
    if task == "nc":
        return nc_margin_loss(model(features, adjacency), labels, 1.0)
    h = model(features, adjacency)
    return lp_margin_loss(model.score(h, pairs[0]), model.score(h, pairs[1]), 1.0)


@pytest.mark.parametrize("task", ["nc", "lp"])
@pytest.mark.parametrize("method", METHODS)
def test_sparse_identity_model_matches_dense(dtype, task, method):
    num_nodes = 15
    edge_index = random_graph(num_nodes, seed=2)
    adjacency = normalized_adjacency(edge_index, num_nodes, dtype=dtype)
    gen = torch.Generator().manual_seed(2)
    labels = torch.randint(0, 3, (num_nodes,), generator=gen)
    pairs = (edge_index[:, :10], torch.randint(0, num_nodes, (2, 10), generator=gen))
    options = dict(manifold=Lorentz(2.0), method=method, rank=None if method == "full" else 2, dim=6, nonlin=torch.relu)
    torch.manual_seed(5)
    if task == "nc":
        model = HyboNetNC(num_nodes, 3, num_layers=3, dtype=dtype, **options).to(dtype)
    else:
        model = HyboNetLP(num_nodes, num_layers=2, **options).to(dtype)
    with torch.no_grad():  # leave the init, whose time column, biases and LoRA B factors are zero
        for layer in model.encoder.layers:
            for param in layer.linear.linear.parameters():
                param.add_(0.3 * torch.randn_like(param))

    results = []
    for features in (torch.eye(num_nodes, dtype=dtype), sparse_identity(num_nodes, dtype)):
        model.zero_grad()
        loss = model_loss(model, task, features, adjacency, labels, pairs)
        loss.backward()
        grads = {name: param.grad.clone() for name, param in model.named_parameters() if param.grad is not None}
        results.append((loss.detach(), grads))
    (dense_loss, dense_grads), (sparse_loss, sparse_grads) = results
    torch.testing.assert_close(sparse_loss, dense_loss, **MODEL_TOL[dtype])
    assert sparse_grads.keys() == dense_grads.keys()
    first = "encoder.layers.0.linear.linear."
    assert any(name.startswith(first) for name in dense_grads)
    for name, grad in dense_grads.items():
        torch.testing.assert_close(sparse_grads[name], grad, **MODEL_TOL[dtype], msg=name)


@pytest.mark.parametrize("method", ["full", "sst"])
def test_large_identity_stays_sparse(method):
    num_nodes = 20_000
    model = HyboNetNC(num_nodes, 3, dim=8, num_layers=2, manifold=Lorentz(), method=method, rank=None if method == "full" else 2)
    first = model.encoder.layers[0].linear
    seen = []
    first.linear.register_forward_pre_hook(lambda module, args: seen.append(args[0].layout))
    points = model.encoder.embed_input(sparse_identity(num_nodes))
    assert points.layout == torch.sparse_coo
    assert points.shape == (num_nodes, num_nodes + 1)
    assert points.values().numel() == 2 * num_nodes
    path = torch.stack([torch.arange(num_nodes - 1), torch.arange(1, num_nodes)])
    edge_index = torch.cat([path, path.flip(0)], dim=1)
    scores = model(points, edge_index, embedded=True)
    nc_margin_loss(scores, torch.arange(num_nodes) % 3, 1.0).backward()
    assert seen == [torch.sparse_coo]
    assert scores.shape == (num_nodes, 3)
    assert torch.isfinite(scores).all()
    assert all(torch.isfinite(param.grad).all() for param in first.parameters() if param.grad is not None)
