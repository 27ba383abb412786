"""Sparse inputs to spectral_linear and SSTLinear: same outputs and gradients as the dense input."""

import warnings

import pytest
import torch

from hypersst.spectral import SSTLinear
from hypersst.spectral.functional import spectral_linear

TOL = {torch.float32: dict(rtol=1e-5, atol=1e-5), torch.float64: dict(rtol=1e-12, atol=1e-12)}
SEEDS = [0, 1, 2]
LAYOUTS = ["coo", "csr"]


def to_layout(x, layout):
    # torch warns that its CSR support is in beta. These tests silence that warning.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return x.to_sparse_coo() if layout == "coo" else x.to_sparse_csr()


def sparse_matrix(rows, cols, dtype, seed, density=0.3):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(rows, cols, generator=gen, dtype=torch.float64)
    x = x * (torch.rand(rows, cols, generator=gen, dtype=torch.float64) < density)
    x[1] = 0.0  # a row without stored values
    return x.to(dtype)


def perturbed_sst(dtype, seed, gradient):
    torch.manual_seed(seed)
    layer = SSTLinear(9, 6, 3, gradient=gradient, dtype=dtype)
    with torch.no_grad():  # the active vectors leave their buffers' values, so both enter the product
        layer.Ut_active.add_(0.2 * torch.randn_like(layer.Ut_active))
        layer.Vh_active.add_(0.2 * torch.randn_like(layer.Vh_active))
    return layer


def outputs_and_gradients(layer, x, weight):
    layer.zero_grad()
    y = layer(x)
    (y * weight).sum().backward()
    return y.detach(), {name: param.grad.clone() for name, param in layer.named_parameters()}


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("gradient", ["enhanced", "default"])
@pytest.mark.parametrize("layout", LAYOUTS)
def test_sst_layer_matches_dense_input(dtype, seed, gradient, layout):
    layer = perturbed_sst(dtype, seed, gradient)
    x = sparse_matrix(7, 9, dtype, seed)
    weight = torch.randn(7, 6, dtype=dtype, generator=torch.Generator().manual_seed(seed + 10))
    y_dense, grads_dense = outputs_and_gradients(layer, x, weight)
    y_sparse, grads_sparse = outputs_and_gradients(layer, to_layout(x, layout), weight)
    assert y_sparse.layout == torch.strided
    torch.testing.assert_close(y_sparse, y_dense, **TOL[dtype])
    assert grads_sparse.keys() == grads_dense.keys() == {"S", "Ut_active", "Vh_active", "bias"}
    for name, grad in grads_dense.items():
        assert grad.abs().max() > 0, name
        torch.testing.assert_close(grads_sparse[name], grad, **TOL[dtype], msg=name)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_sparse_input_gradient_is_masked(dtype, layout):
    layer = perturbed_sst(dtype, 0, "enhanced")
    x = sparse_matrix(7, 9, dtype, 3)
    dense = x.clone().requires_grad_(True)
    sparse = to_layout(x, layout).requires_grad_(True)
    weight = torch.randn(7, 6, dtype=dtype)
    (layer(dense) * weight).sum().backward()
    (layer(sparse) * weight).sum().backward()
    assert sparse.grad.layout == sparse.layout
    stored = (x != 0).to(dtype)
    torch.testing.assert_close(sparse.grad.to_dense(), dense.grad * stored, **TOL[dtype])


def test_uncoalesced_input_sums_duplicates(dtype):
    layer = perturbed_sst(dtype, 1, "default")
    indices = torch.tensor([[0, 0, 2, 2], [3, 3, 5, 1]])
    values = torch.tensor([1.0, 2.0, -0.5, 4.0], dtype=dtype)
    sparse = torch.sparse_coo_tensor(indices, values, (3, 9), check_invariants=True)
    torch.testing.assert_close(layer(sparse), layer(sparse.to_dense()), **TOL[dtype])


def test_functional_matches_dense_without_grad():
    layer = perturbed_sst(torch.float64, 2, "enhanced")
    x = sparse_matrix(5, 9, torch.float64, 2)
    args = (layer.U_buffer, layer.Vh_buffer, layer.Ut_active, layer.Vh_active, layer.S, layer.active_indices)
    with torch.no_grad():
        expected = spectral_linear(x, *args)
        result = spectral_linear(x.to_sparse(), *args)
    torch.testing.assert_close(result, expected, rtol=1e-12, atol=1e-12)


def test_unsupported_sparse_inputs_raise():
    layer = perturbed_sst(torch.float64, 0, "enhanced")
    x = sparse_matrix(4, 9, torch.float64, 0)
    with pytest.raises(TypeError, match="spectral_linear: a sparse input must use the COO or CSR layout, got torch.sparse_csc"):
        layer(to_layout(x, "coo").to_sparse_csc())
    batched = torch.stack([x, x]).to_sparse()
    with pytest.raises(ValueError, match=r"spectral_linear: a sparse input must be a 2-D \(batch, in\) matrix.*shape \(2, 4, 9\)"):
        layer(batched)
    hybrid = x.to_sparse(sparse_dim=1)
    with pytest.raises(ValueError, match="with 1 dense dimensions"):
        layer(hybrid)
