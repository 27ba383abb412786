import itertools
import math

import pytest
import torch
from scipy import stats

from hypersst.spectral.functional import (
    sample_active_indices,
    sampling_probabilities,
    spectral_linear,
    svd_factors,
)


def test_mixed_probabilities_formula():
    S = torch.tensor([4.0, 3.0, 2.0, 1.0])
    expected = 0.5 * (1 / 4 + S.double() / S.sum())
    assert torch.allclose(sampling_probabilities(S, sampling="mixed"), expected)


def test_proportional_probabilities_formula():
    S = torch.tensor([4.0, 3.0, 0.0, 1.0])
    assert torch.allclose(sampling_probabilities(S, sampling="proportional"), S.double() / 8.0)


def test_all_zero_singular_values_fall_back_to_uniform():
    for sampling in ("mixed", "proportional"):
        probs = sampling_probabilities(torch.zeros(5), sampling=sampling)
        assert torch.allclose(probs, torch.full((5,), 0.2, dtype=torch.float64))


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_singular_values_raise_with_layer_name(bad):
    S = torch.tensor([1.0, bad, 0.5])
    with pytest.raises(ValueError, match="encoder.fc1: singular values contain NaN or Inf"):
        sample_active_indices(S, 1, name="encoder.fc1")


def test_uniform_probabilities_ignore_the_singular_values():
    probs = sampling_probabilities(torch.tensor([9.0, 1.0, 0.0, 2.0]), sampling="uniform")
    assert torch.equal(probs, torch.full((4,), 0.25, dtype=torch.float64))


def test_unknown_sampling_rule_raises():
    with pytest.raises(ValueError, match="sampling must be one of 'mixed', .*'top', got 'topk'"):
        sampling_probabilities(torch.ones(3), sampling="topk")
    with pytest.raises(ValueError, match="got 'topk'"):
        sample_active_indices(torch.ones(3), 1, sampling="topk")


@pytest.mark.parametrize("sampling", ["sequential", "top"])
def test_ordered_rules_have_no_probabilities(sampling):
    with pytest.raises(ValueError, match=f"sampling '{sampling}' chooses triplets without drawing them"):
        sampling_probabilities(torch.ones(3), sampling=sampling)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_top_breaks_ties_by_index(dtype):
    S = torch.tensor([1.0, 3.0, 2.0, 3.0, 0.5], dtype=dtype)
    assert sample_active_indices(S, 2, sampling="top").tolist() == [1, 3]
    assert sample_active_indices(S, 3, sampling="top").tolist() == [1, 2, 3]


def test_sequential_covers_each_triplet_once():
    S = torch.linspace(5.0, 1.0, 13)
    rank, per_round = 2, math.ceil(13 / 2)
    chosen = [sample_active_indices(S, rank, sampling="sequential", position=j).tolist() for j in range(per_round)]
    assert chosen[:3] == [[0, 1], [2, 3], [4, 5]]
    assert chosen[-1] == [0, 12]  # the last iteration wraps around to fill its second slot
    assert sorted(set(itertools.chain.from_iterable(chosen))) == list(range(13))


def test_ordered_rules_ignore_the_generator():
    S = torch.rand(8, generator=torch.Generator().manual_seed(0))
    generator = torch.Generator().manual_seed(1)
    state = generator.get_state()
    for sampling in ("sequential", "top"):
        sample_active_indices(S, 3, sampling=sampling, generator=generator, position=1)
    assert torch.equal(generator.get_state(), state)


@pytest.mark.parametrize("position", [-1, 1.0, True])
def test_sequential_rejects_a_bad_position(position):
    with pytest.raises(ValueError, match=f"position must be a non-negative int, got {position!r}"):
        sample_active_indices(torch.ones(4), 2, sampling="sequential", position=position)


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
@pytest.mark.parametrize("sampling", ["sequential", "top"])
def test_ordered_rules_reject_non_finite_singular_values(bad, sampling):
    with pytest.raises(ValueError, match="enc: singular values contain NaN or Inf"):
        sample_active_indices(torch.tensor([1.0, bad, 0.5]), 1, sampling=sampling, name="enc")


@pytest.mark.parametrize("sampling", ["mixed", "top", "sequential"])
def test_non_integer_rank_raises(sampling):
    with pytest.raises(TypeError, match="rank must be an int, got 2.0"):
        sample_active_indices(torch.ones(4), 2.0, sampling=sampling)


def test_rank_out_of_range_raises():
    with pytest.raises(ValueError, match="cannot draw rank=4 triplets from k=3"):
        sample_active_indices(torch.ones(3), 4)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_indices_are_distinct_and_sorted(seed):
    generator = torch.Generator().manual_seed(seed)
    S = torch.rand(50)
    for _ in range(20):
        drawn = sample_active_indices(S, 10, generator=generator)
        assert drawn.numel() == 10
        assert torch.unique(drawn).numel() == 10
        assert torch.equal(drawn, torch.sort(drawn).values)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_zero_weights_never_drawn_when_enough_positive(seed):
    generator = torch.Generator().manual_seed(seed)
    S = torch.tensor([0.0, 2.0, 0.0, 1.0, 3.0, 0.0, 0.5])
    for _ in range(500):
        drawn = sample_active_indices(S, 4, sampling="proportional", generator=generator)
        assert not torch.isin(drawn, torch.tensor([0, 2, 5])).any()


def test_too_few_positive_weights_take_all_then_fill_uniformly():
    generator = torch.Generator().manual_seed(0)
    S = torch.tensor([0.0, 2.0, 0.0, 0.0, 1.0, 0.0])
    fillers = torch.zeros(6)
    trials = 3000
    for _ in range(trials):
        drawn = sample_active_indices(S, 3, sampling="proportional", generator=generator)
        assert torch.isin(torch.tensor([1, 4]), drawn).all()
        fillers[drawn] += 1
    zero_counts = fillers[[0, 2, 3, 5]]
    assert zero_counts.sum() == trials
    # The filler slot is uniform over the four zero-weight indices.
    assert stats.chisquare(zero_counts.numpy()).pvalue > 1e-3


@pytest.mark.parametrize("sampling", ["mixed", "proportional"])
def test_single_draw_frequencies_match_probabilities(sampling):
    generator = torch.Generator().manual_seed(1234)
    S = torch.tensor([5.0, 3.0, 1.5, 1.0, 0.4, 0.1])
    probs = sampling_probabilities(S, sampling=sampling)
    trials = 20000
    counts = torch.zeros(6)
    for _ in range(trials):
        counts[sample_active_indices(S, 1, sampling=sampling, generator=generator)] += 1
    result = stats.chisquare(counts.numpy(), (probs * trials).numpy())
    assert result.pvalue > 1e-3


def _inclusion_probabilities(probs, rank):
    """Exact inclusion probabilities of successive sampling without replacement, by enumeration."""
    k = len(probs)
    inclusion = [0.0] * k
    for order in itertools.permutations(range(k), rank):
        chance, remaining = 1.0, 1.0
        for index in order:
            chance *= probs[index] / remaining
            remaining -= probs[index]
        for index in order:
            inclusion[index] += chance
    return torch.tensor(inclusion)


def test_multi_draw_inclusion_frequencies_match_successive_sampling():
    generator = torch.Generator().manual_seed(99)
    S = torch.tensor([4.0, 2.0, 1.0, 0.5, 0.25])
    probs = sampling_probabilities(S, sampling="mixed")
    expected = _inclusion_probabilities(probs.tolist(), 2)
    trials = 20000
    counts = torch.zeros(5)
    for _ in range(trials):
        counts[sample_active_indices(S, 2, generator=generator)] += 1
    # Each draw includes exactly two indices, so compare the counts against 2 * trials in total.
    result = stats.chisquare(counts.numpy(), (expected * trials).numpy())
    assert result.pvalue > 1e-3


def _dense_reference(x, U, S, Vh):
    return x @ (U * S @ Vh).t()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_enhanced_gradient_equals_dense_reference(dtype, seed):
    torch.manual_seed(seed)
    m, n, r = 6, 9, 3
    U, S, Vh = svd_factors(torch.randn(m, n, dtype=dtype))
    indices = torch.tensor([0, 2, 5])
    Ut_active = U[:, indices].t().clone().requires_grad_(True)
    Vh_active = Vh[indices].clone().requires_grad_(True)
    S_param = S.clone().requires_grad_(True)
    x = torch.randn(4, 3, n, dtype=dtype)
    target = torch.randn(4, 3, m, dtype=dtype)
    out = spectral_linear(x, U, Vh, Ut_active, Vh_active, S_param, indices, enhanced=True)
    ((out - target) ** 2).sum().backward()

    weight = (U * S @ Vh).requires_grad_(True)
    ((x @ weight.t() - target) ** 2).sum().backward()
    G = weight.grad
    tolerance = 1e-4 if dtype == torch.float32 else 1e-10
    for slot, i in enumerate(indices.tolist()):
        torch.testing.assert_close(Ut_active.grad[slot], G @ Vh[i], atol=tolerance, rtol=tolerance)
        torch.testing.assert_close(Vh_active.grad[slot], G.t() @ U[:, i], atol=tolerance, rtol=tolerance)
    torch.testing.assert_close(S_param.grad, torch.diagonal(U.t() @ G @ Vh.t()), atol=tolerance, rtol=tolerance)


def test_default_gradient_passes_gradcheck():
    torch.manual_seed(0)
    U, S, Vh = svd_factors(torch.randn(5, 4, dtype=torch.float64))
    indices = torch.tensor([1, 3])
    inputs = (
        torch.randn(3, 4, dtype=torch.float64, requires_grad=True),
        U[:, indices].t().clone().requires_grad_(True),
        Vh[indices].clone().requires_grad_(True),
        S.clone().requires_grad_(True),
    )

    def function(x, Ut_active, Vh_active, S_param):
        return spectral_linear(x, U, Vh, Ut_active, Vh_active, S_param, indices, enhanced=False)

    assert torch.autograd.gradcheck(function, inputs)


def test_frozen_buffers_get_no_gradient():
    U, S, Vh = svd_factors(torch.randn(4, 4))
    U_buffer = U.clone().requires_grad_(True)
    Ut_active = U[:, :1].t().clone().requires_grad_(True)
    indices = torch.tensor([0])
    spectral_linear(torch.randn(2, 4), U_buffer, Vh, Ut_active, Vh[:1], S, indices).sum().backward()
    assert U_buffer.grad is None
    assert Ut_active.grad is not None


def test_svd_factors_rejects_non_finite_weight():
    weight = torch.ones(3, 3)
    weight[1, 1] = float("nan")
    with pytest.raises(ValueError, match="decoder.out: weight contains NaN or Inf"):
        svd_factors(weight, name="decoder.out")


def test_svd_factors_reconstructs_in_half_precision_input():
    weight = torch.randn(8, 5, dtype=torch.bfloat16)
    U, S, Vh = svd_factors(weight)
    assert U.dtype == torch.bfloat16
    torch.testing.assert_close((U.float() * S.float()) @ Vh.float(), weight.float(), atol=0.1, rtol=0.05)
