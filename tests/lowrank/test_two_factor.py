"""Tests for TwoFactorLinear."""

import pytest
import torch

from hypersst.lowrank import TwoFactorLinear

ATOL = {torch.float32: 2e-5, torch.float64: 1e-11}
RTOL = {torch.float32: 1e-4, torch.float64: 1e-10}


def _close(actual, expected, dtype):
    torch.testing.assert_close(actual, expected, atol=ATOL[dtype], rtol=RTOL[dtype])



def test_two_factor_forward_and_weight(dtype):
    torch.manual_seed(0)
    left, right, bias = torch.randn(5, 2, dtype=dtype), torch.randn(2, 4, dtype=dtype), torch.randn(5, dtype=dtype)
    layer = TwoFactorLinear.from_factors(left, right, bias)
    x = torch.randn(3, 7, 4, dtype=dtype)
    _close(layer(x), x @ (left @ right).T + bias, dtype)
    _close(layer.to_linear()(x), layer(x), dtype)
    assert sum(p.numel() for p in layer.parameters()) == 2 * (5 + 4) + 5


def test_two_factor_state_dict_round_trip():
    torch.manual_seed(0)
    layer = TwoFactorLinear.from_factors(torch.randn(4, 2), torch.randn(2, 3))
    copy = TwoFactorLinear(3, 4, 2, bias=False)
    copy.load_state_dict(layer.state_dict())
    x = torch.randn(5, 3)
    assert torch.equal(copy(x), layer(x))


def test_two_factor_errors():
    with pytest.raises(ValueError, match=r"expected left \(out, r\) and right \(r, in\)"):
        TwoFactorLinear.from_factors(torch.ones(5, 2), torch.ones(3, 4))
    with pytest.raises(ValueError, match=r"bias must have shape \(5,\)"):
        TwoFactorLinear.from_factors(torch.ones(5, 2), torch.ones(2, 4), torch.ones(4))
    with pytest.raises(ValueError, match="rank must be a positive int, got 0"):
        TwoFactorLinear(4, 5, 0)
    layer = TwoFactorLinear.from_factors(torch.full((2, 1), float("inf")), torch.ones(1, 3))
    with pytest.raises(RuntimeError, match="contains NaN or Inf"):
        layer.to_linear()
