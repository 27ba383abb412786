"""Sparse 2-D inputs to LorentzLinear and to its inner linear map, for every training method."""

import warnings

import pytest
import torch

from hypersst.manifolds import Lorentz
from hypersst.nn import LorentzLinear
from hypersst.nn._linear import build_linear

METHODS = ["full", "lora", "relora", "sst"]
LAYOUTS = ["coo", "csr"]
IN, OUT = 8, 5
TOL = {torch.float32: dict(rtol=1e-5, atol=1e-5), torch.float64: dict(rtol=1e-11, atol=1e-11)}


def to_layout(x, layout):
    # torch warns that its CSR support is in beta. These tests silence that warning.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return x.to_sparse_coo() if layout == "coo" else x.to_sparse_csr()


def sparse_points(manifold, rows, dtype, seed):
    """Points of the hyperboloid whose space coordinates are mostly zero, like embedded one-hot features."""
    gen = torch.Generator().manual_seed(seed)
    space = torch.randn(rows, IN - 1, generator=gen, dtype=torch.float64)
    space = space * (torch.rand(rows, IN - 1, generator=gen, dtype=torch.float64) < 0.3)
    space[0] = 0.0  # the origin
    u = torch.cat((torch.zeros(rows, 1, dtype=torch.float64), space), dim=-1)
    return manifold.expmap0(u).to(dtype)


def perturb_(module, seed):
    torch.manual_seed(seed)
    with torch.no_grad():  # leave the init, whose time column, bias and LoRA B factor are zero
        for param in module.parameters():
            param.add_(0.3 * torch.randn_like(param))


def outputs_and_gradients(module, x, weight):
    module.zero_grad()
    y = module(x)
    (y * weight).sum().backward()
    return y.detach(), {name: param.grad.clone() for name, param in module.named_parameters() if param.grad is not None}


def assert_same_outputs_and_gradients(module, x, layout, dtype, seed):
    weight = torch.randn(x.shape[0], module(x).shape[-1], dtype=dtype, generator=torch.Generator().manual_seed(seed))
    y_dense, grads_dense = outputs_and_gradients(module, x, weight)
    y_sparse, grads_sparse = outputs_and_gradients(module, to_layout(x, layout), weight)
    torch.testing.assert_close(y_sparse, y_dense, **TOL[dtype])
    assert grads_dense
    assert grads_sparse.keys() == grads_dense.keys()
    for name, grad in grads_dense.items():
        torch.testing.assert_close(grads_sparse[name], grad, **TOL[dtype], msg=name)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("seed", [0, 1])
def test_inner_linear_matches_dense_input(dtype, method, layout, seed):
    linear = build_linear(IN, OUT, bias=True, method=method, rank=None if method == "full" else 2, dtype=dtype)
    perturb_(linear, seed)
    assert_same_outputs_and_gradients(linear, sparse_points(Lorentz(1.0), 9, dtype, seed), layout, dtype, seed)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("k", [0.5, 1.0, 4.0])
def test_layer_matches_dense_input(dtype, method, layout, k):
    manifold = Lorentz(k)
    layer = LorentzLinear(IN, OUT, manifold, method=method, rank=None if method == "full" else 2, dtype=dtype)
    perturb_(layer.linear, 3)
    x = sparse_points(manifold, 9, dtype, 3)
    assert_same_outputs_and_gradients(layer, x, layout, dtype, 3)
    assert layer.scale.grad is not None and layer.scale.grad.abs() > 0


@pytest.mark.parametrize("method", METHODS)
def test_eval_mode_skips_dropout(dtype, method):
    layer = LorentzLinear(IN, OUT, Lorentz(1.0), dropout=0.6, method=method, rank=None if method == "full" else 2, dtype=dtype)
    perturb_(layer.linear, 4)
    layer.eval()
    assert_same_outputs_and_gradients(layer, sparse_points(Lorentz(1.0), 9, dtype, 4), "coo", dtype, 4)


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_dropout_scales_surviving_values(dtype, layout, seed):
    p = 0.4
    manifold = Lorentz(2.0)
    layer = LorentzLinear(IN, OUT, manifold, dropout=p, method="sst", rank=2, dtype=dtype)
    x = sparse_points(manifold, 40, dtype, seed)
    seen = []
    layer.linear.register_forward_pre_hook(lambda module, args: seen.append(args[0]))
    torch.manual_seed(seed)
    y = layer(to_layout(x, layout))

    dropped = seen[0]
    assert dropped.layout == to_layout(x, layout).layout  # the inner map received the sparse matrix
    stored = x != 0
    dropped_dense = dropped.to_dense()
    survived = dropped_dense != 0
    assert survived.any()
    assert (stored & ~survived).any()
    assert not (survived & ~stored).any()
    torch.testing.assert_close(dropped_dense[survived], x[survived] / (1 - p), **TOL[dtype])
    assert y.shape == (40, OUT)
    assert torch.isfinite(y).all()
    assert torch.allclose(manifold.inner(y, y).double(), torch.full((40,), -2.0, dtype=torch.float64), rtol=1e-4)


def test_unsupported_sparse_inputs_raise():
    manifold = Lorentz(1.0)
    x = sparse_points(manifold, 4, torch.float64, 0)
    layer = LorentzLinear(IN, OUT, manifold, nonlin=torch.tanh, dtype=torch.float64)
    with pytest.raises(ValueError, match="LorentzLinear: nonlin='tanh' cannot act on a sparse input.*nonlin=None"):
        layer(x.to_sparse())
    layer = LorentzLinear(IN, OUT, manifold, dtype=torch.float64)
    with pytest.raises(TypeError, match="LorentzLinear: a sparse input must use the COO or CSR layout, got torch.sparse_csc"):
        layer(x.to_sparse_csc())
    with pytest.raises(ValueError, match=r"LorentzLinear: a sparse input must be a 2-D \(batch, 8\) matrix.*shape \(2, 4, 8\)"):
        layer(torch.stack([x, x]).to_sparse())
    with pytest.raises(ValueError, match="with 1 dense dimensions"):
        layer(x.to_sparse(sparse_dim=1))

