"""Tests for make_linear, convert_linear, apply_lowrank and merge_lowrank."""

from collections import OrderedDict

import pytest
import torch
from torch import nn

from hypersst.lowrank import (
    LoRALinear,
    LowRankReport,
    ReLoRALinear,
    TwoFactorLinear,
    apply_lowrank,
    convert_linear,
    make_linear,
    merge_lowrank,
)
from hypersst.spectral import SSTLinear

SEEDS = (0, 1, 2)
ATOL = {torch.float32: 2e-5, torch.float64: 1e-11}
RTOL = {torch.float32: 1e-4, torch.float64: 1e-10}
LAYER_TYPES = {"lora": LoRALinear, "relora": ReLoRALinear, "sst": SSTLinear}


def _close(actual, expected, dtype):
    torch.testing.assert_close(actual, expected, atol=ATOL[dtype], rtol=RTOL[dtype])


class Head(nn.Module):
    """Embedding, a nested MLP and an output layer, as in a small language model."""

    def __init__(self, dtype=torch.float32):
        super().__init__()
        self.net = nn.Sequential(
            OrderedDict(
                embed=nn.Embedding(11, 8, dtype=dtype),
                body=nn.Sequential(nn.Linear(8, 12, dtype=dtype), nn.Tanh(), nn.Linear(12, 6, dtype=dtype)),
                mix=nn.Linear(6, 6, bias=False, dtype=dtype),
                lm_head=nn.Linear(6, 11, dtype=dtype),
            )
        )

    def forward(self, tokens):
        return self.net(tokens)


def _perturb_factors(model, seed):
    """Move LoRA factors away from their zero-update start, so merges are not trivial."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, LoRALinear):
                module.lora_B.copy_(torch.randn(module.lora_B.shape, generator=generator) * 0.1)


# ---------------------------------------------------------------------------------------------- make_linear


@pytest.mark.parametrize("method, cls", [("full", nn.Linear), ("galore", nn.Linear), ("lora", LoRALinear),
                                         ("relora", ReLoRALinear), ("sst", SSTLinear)])
def test_make_linear_types(method, cls, dtype):
    layer = make_linear(7, 5, method=method, rank=3, dtype=dtype)
    assert type(layer) is cls
    out = layer(torch.randn(2, 7, dtype=dtype))
    assert out.shape == (2, 5)
    assert out.dtype == dtype


def test_make_linear_options():
    layer = make_linear(7, 5, bias=False, method="lora", rank=2, alpha=8)
    assert layer.bias is None
    assert layer.scaling == 4.0
    sst = make_linear(7, 5, method="sst", rank=2, gradient="default")
    assert sst.gradient == "default"


def test_make_linear_full_ignores_rank():
    layer = make_linear(4, 3, method="full", rank=99)
    assert type(layer) is nn.Linear


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"method": "dora", "rank": 2}, ValueError, "unknown method 'dora'; choose one of 'full'"),
        ({"method": "lora"}, ValueError, "method 'lora' needs a rank"),
        ({"method": "sst", "rank": 0}, ValueError, r"rank=0 is out of range"),
        ({"method": "relora", "rank": 6}, ValueError, r"rank=6 is out of range .* = 5"),
        ({"method": "lora", "rank": "2"}, TypeError, "rank must be an int"),
    ],
)
def test_make_linear_errors(kwargs, error, match):
    with pytest.raises(error, match=match):
        make_linear(7, 5, **kwargs)


# ---------------------------------------------------------------------------------------------- convert_linear


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("method", ["lora", "relora", "sst"])
def test_convert_linear_preserves_outputs(method, seed, dtype):
    torch.manual_seed(seed)
    linear = nn.Linear(9, 6, dtype=dtype)
    x = torch.randn(4, 9, dtype=dtype)
    layer = convert_linear(linear, method, 3)
    assert type(layer) is LAYER_TYPES[method]
    _close(layer(x), linear(x), dtype)


def test_convert_linear_dense_methods_return_input():
    linear = nn.Linear(4, 3)
    assert convert_linear(linear, "full") is linear
    assert convert_linear(linear, "galore", 2) is linear


def test_convert_linear_errors():
    with pytest.raises(TypeError, match="layer 'conv' must be an nn.Linear, got Conv1d"):
        convert_linear(nn.Conv1d(2, 2, 1), "lora", 1, name="conv")
    with pytest.raises(ValueError, match="method 'sst' needs a rank"):
        convert_linear(nn.Linear(4, 3), "sst")
    broken = nn.Linear(4, 3)
    with torch.no_grad():
        broken.bias[1] = float("nan")
    with pytest.raises(ValueError, match="layer 'proj' has a bias with NaN or Inf"):
        convert_linear(broken, "lora", 1, name="proj")


# ---------------------------------------------------------------------------------------------- apply_lowrank


def _expected_trainable(method, rank, shapes):
    """Trainable count of the converted Linear layers, from the formulas for each method."""
    total = 0
    for out_features, in_features, has_bias in shapes:
        bias = out_features if has_bias else 0
        if method in ("lora", "relora"):
            total += rank * (in_features + out_features) + bias
        else:
            total += rank * (in_features + out_features) + min(in_features, out_features) + bias
    return total


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("method", ["lora", "relora", "sst"])
def test_apply_lowrank_nested_model(method, seed, dtype):
    torch.manual_seed(seed)
    model = Head(dtype)
    tokens = torch.randint(0, 11, (3, 5))
    expected = model(tokens).detach()
    before = sum(p.numel() for p in model.parameters())

    report = apply_lowrank(model, method, 2, exclude=("lm_head", "embed"))

    assert report.changed_modules == ("net.body.0", "net.body.2", "net.mix")
    assert type(model.net.body[0]) is LAYER_TYPES[method]
    assert type(model.net.body[2]) is LAYER_TYPES[method]
    assert type(model.net.mix) is LAYER_TYPES[method]
    assert type(model.net.lm_head) is nn.Linear
    assert type(model.net.embed) is nn.Embedding

    unchanged = 11 * 8 + 6 * 11 + 11  # embedding and lm_head
    converted = _expected_trainable(method, 2, [(12, 8, True), (6, 12, True), (6, 6, False)])
    assert report.trainable_before == before
    assert report.trainable_after == unchanged + converted
    assert report.gamma == pytest.approx((unchanged + converted) / before, rel=1e-15)
    assert report.trainable_after == sum(p.numel() for p in model.parameters() if p.requires_grad)
    _close(model(tokens), expected, dtype)


def test_apply_lowrank_report_str():
    report = apply_lowrank(Head(), "lora", 2, exclude=("lm_head",))
    text = str(report)
    assert "method='lora', rank=2" in text
    assert "net.body.0" in text
    assert "net.mix" in text
    assert f"Γ = {report.gamma:.4f}" in text
    assert isinstance(report, LowRankReport)


def test_apply_lowrank_target_suffixes():
    model = Head()
    report = apply_lowrank(model, "lora", 2, target_modules=["mix", "body.2"])
    assert report.changed_modules == ("net.body.2", "net.mix")
    assert type(model.net.body[0]) is nn.Linear


def test_apply_lowrank_target_regex():
    model = Head()
    report = apply_lowrank(model, "relora", 1, target_modules=r"net\.body\.[02]")
    assert report.changed_modules == ("net.body.0", "net.body.2")
    assert type(model.net.mix) is nn.Linear


def test_apply_lowrank_regex_matching_activation_raises():
    with pytest.raises(TypeError, match="module 'net.body.1' matches target_modules but its type is Tanh"):
        apply_lowrank(Head(), "lora", 1, target_modules=r"net\.body\.\d+")


def test_apply_lowrank_suffix_matches_at_dot_boundary():
    model = nn.Sequential(OrderedDict(proj=nn.Linear(4, 4), out_proj=nn.Linear(4, 4)))
    report = apply_lowrank(model, "lora", 1, target_modules=["proj"])
    assert report.changed_modules == ("proj",)


def test_apply_lowrank_exclude_covers_descendants():
    model = Head()
    report = apply_lowrank(model, "lora", 2, exclude="body")
    assert report.changed_modules == ("net.mix", "net.lm_head")


def test_apply_lowrank_exclude_wins_over_target():
    model = Head()
    report = apply_lowrank(model, "lora", 2, target_modules=["mix", "lm_head"], exclude=("lm_head",))
    assert report.changed_modules == ("net.mix",)


def test_apply_lowrank_full_changes_nothing():
    model = Head()
    report = apply_lowrank(model, "full", None)
    assert report.changed_modules == ()
    assert report.gamma == 1.0
    assert type(model.net.mix) is nn.Linear


def test_apply_lowrank_galore_records_targets():
    model = Head()
    report = apply_lowrank(model, "galore", 4, exclude=("lm_head",))
    assert report.changed_modules == ()
    assert report.galore_targets == ("net.body.0.weight", "net.body.2.weight", "net.mix.weight")
    assert report.trainable_after == report.trainable_before
    assert "GaLore projects 3 weights" in str(report)


def test_apply_lowrank_shared_module_replaced_everywhere():
    shared = nn.Linear(5, 5)
    model = nn.Sequential(shared, nn.ReLU(), shared)
    x = torch.randn(2, 5)
    expected = model(x).detach()
    report = apply_lowrank(model, "lora", 2)
    assert report.changed_modules == ("0",)
    assert model[0] is model[2]
    assert isinstance(model[0], LoRALinear)
    torch.testing.assert_close(model(x), expected)


class _HyperbolicLike(nn.Module):
    """Stands for a hyperbolic layer: a wrapper with an inner Euclidean ``.linear``."""

    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(6, 4)

    def forward(self, x):
        return torch.tanh(self.linear(x))


def test_apply_lowrank_named_wrapper_converts_inner_linear():
    model = nn.Sequential(OrderedDict(hyp=_HyperbolicLike(), head=nn.Linear(4, 2)))
    x = torch.randn(3, 6)
    expected = model(x).detach()
    report = apply_lowrank(model, "sst", 2, target_modules=["hyp"])
    assert report.changed_modules == ("hyp.linear",)
    assert isinstance(model.hyp.linear, SSTLinear)
    torch.testing.assert_close(model(x), expected, atol=1e-5, rtol=1e-4)


def test_apply_lowrank_skips_multihead_attention_projection():
    model = nn.Sequential(OrderedDict(attn=nn.MultiheadAttention(8, 2), proj=nn.Linear(8, 8)))
    report = apply_lowrank(model, "lora", 2)
    assert report.changed_modules == ("proj",)
    with pytest.raises(TypeError, match="belongs to nn.MultiheadAttention"):
        apply_lowrank(model, "lora", 2, target_modules=["out_proj"])


def test_apply_lowrank_keeps_device_and_dtype():
    model = Head(torch.float64)
    apply_lowrank(model, "lora", 2)
    assert model.net.mix.base_weight.dtype == torch.float64
    assert model.net.mix.lora_A.dtype == torch.float64


def test_apply_lowrank_passes_options():
    model = Head()
    apply_lowrank(model, "lora", 2, alpha=8)
    assert model.net.mix.scaling == 4.0


def test_error_leaves_model_unchanged():
    model = Head()
    # Rank 7 fits net.body.0 (8 -> 12) but not net.body.2 (12 -> 6), which is checked second.
    with pytest.raises(ValueError, match=r"layer 'net.body.2': rank=7 is out of range"):
        apply_lowrank(model, "lora", 7, target_modules=["body.0", "body.2"])
    assert type(model.net.body[0]) is nn.Linear


@pytest.mark.parametrize(
    "args, kwargs, error, match",
    [
        (("dora", 2), {}, ValueError, "unknown method 'dora'"),
        (("lora", None), {}, ValueError, "method 'lora' needs a rank"),
        (("sst", 0), {}, ValueError, r"layer 'net.body.0': rank=0 is out of range"),
        (("lora", 7), {}, ValueError, r"layer 'net.body.2': rank=7 is out of range .* = 6"),
        (("lora", 2.5), {}, TypeError, "rank must be an int"),
        (("lora", 2), {"target_modules": ["body"]}, TypeError,
         "module 'net.body' matches target_modules but its type is Sequential"),
        (("lora", 2), {"target_modules": ["embed"]}, TypeError, "its type is Embedding; supported types are Linear"),
        (("lora", 2), {"target_modules": ["mix", "q_proj"]}, ValueError,
         r"entries \['q_proj'\] match no module"),
        (("lora", 2), {"target_modules": "net.(body"}, ValueError, "is not a valid regular expression"),
        (("lora", 2), {"target_modules": []}, ValueError, "target_modules is empty"),
        (("lora", 2), {"exclude": [3]}, TypeError, "exclude must contain non-empty module names"),
        (("full", None), {"alpha": 2}, ValueError, r"method 'full' replaces no layer and takes no options"),
        (("galore", 2), {"scale": 0.5}, ValueError, "pass GaLore options to make_galore_optimizer"),
    ],
)
def test_apply_lowrank_errors(args, kwargs, error, match):
    with pytest.raises(error, match=match):
        apply_lowrank(Head(), *args, **kwargs)


def test_apply_lowrank_rejects_non_finite_weight():
    model = Head()
    with torch.no_grad():
        model.net.mix.weight[0, 0] = float("inf")
    with pytest.raises(ValueError, match="layer 'net.mix' has a weight with NaN or Inf"):
        apply_lowrank(model, "sst", 2)
    assert type(model.net.body[0]) is nn.Linear


def test_apply_lowrank_rejects_tied_weight():
    model = Head()
    model.net.lm_head.weight = model.net.embed.weight
    with pytest.raises(ValueError, match=r"weight of layer 'net.lm_head' is tied to \['net.embed'\]"):
        apply_lowrank(model, "lora", 2)
    report = apply_lowrank(model, "lora", 2, exclude=("lm_head",))
    assert "net.lm_head" not in report.changed_modules


def test_apply_lowrank_rejects_linear_model():
    with pytest.raises(TypeError, match="the model is itself an nn.Linear"):
        apply_lowrank(nn.Linear(3, 3), "lora", 1)


def test_unsupported_method_for_sst_layer_target():
    model = Head()
    apply_lowrank(model, "lora", 2)
    with pytest.raises(TypeError, match="'net.mix' matches target_modules but its type is LoRALinear"):
        apply_lowrank(model, "sst", 2, target_modules=["mix"])


# ---------------------------------------------------------------------------------------------- merge_lowrank


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("method", ["lora", "relora", "sst"])
def test_merge_round_trip(method, seed, dtype):
    torch.manual_seed(seed)
    model = Head(dtype)
    apply_lowrank(model, method, 2, exclude=("lm_head",))
    _perturb_factors(model, seed)
    tokens = torch.randint(0, 11, (4, 3))
    expected = model(tokens).detach()

    result = merge_lowrank(model)

    assert result is model
    for name, module in model.named_modules():
        assert not isinstance(module, (LoRALinear, SSTLinear, TwoFactorLinear)), name
    assert type(model.net.mix) is nn.Linear
    assert model.net.mix.bias is None
    assert model.net.mix.weight.dtype == dtype
    _close(model(tokens), expected, dtype)


def test_merge_inner_linear_of_wrapper():
    model = nn.Sequential(_HyperbolicLike())
    apply_lowrank(model, "relora", 2)
    _perturb_factors(model, 0)
    x = torch.randn(2, 6)
    expected = model(x).detach()
    merge_lowrank(model)
    assert type(model[0].linear) is nn.Linear
    torch.testing.assert_close(model(x), expected, atol=1e-6, rtol=1e-5)


def test_merge_root_layer_returns_linear():
    layer = LoRALinear(5, 3, rank=2)
    merged = merge_lowrank(layer)
    assert type(merged) is nn.Linear
    x = torch.randn(2, 5)
    torch.testing.assert_close(merged(x), layer(x))


def test_merge_two_factor_layer():
    torch.manual_seed(0)
    model = nn.Sequential(TwoFactorLinear.from_factors(torch.randn(4, 2), torch.randn(2, 6), torch.randn(4)))
    x = torch.randn(3, 6)
    expected = model(x).detach()
    merge_lowrank(model)
    assert type(model[0]) is nn.Linear
    torch.testing.assert_close(model(x), expected)


def test_merge_rejects_non_finite():
    model = Head()
    apply_lowrank(model, "lora", 2)
    with torch.no_grad():
        model.net.mix.lora_B.fill_(float("nan"))
    with pytest.raises(RuntimeError, match="merge_lowrank: layer 'net.mix' cannot be merged"):
        merge_lowrank(model)
    assert isinstance(model.net.body[0], LoRALinear)


def test_apply_lowrank_exclude_typo_raises():
    model = nn.Sequential(OrderedDict(body=nn.Linear(6, 6), head=nn.Linear(6, 2)))
    with pytest.raises(ValueError, match=r"exclude entries \['haed'\] match no module"):
        apply_lowrank(model, "sst", 2, exclude=("haed",))
    assert isinstance(model.head, nn.Linear), "a rejected call must leave the model unchanged"
    assert isinstance(model.body, nn.Linear)


def test_apply_lowrank_on_converted_model_raises():
    model = nn.Sequential(OrderedDict(body=nn.Linear(6, 6)))
    apply_lowrank(model, "sst", 2)
    with pytest.raises(ValueError, match=r"already holds converted layers such as 'body', so call merge_lowrank"):
        apply_lowrank(model, "lora", 2)


def test_apply_lowrank_without_linear_layers_raises():
    with pytest.raises(ValueError, match="has no nn.Linear layer to convert with method 'relora'$"):
        apply_lowrank(nn.Sequential(nn.ReLU()), "relora", 2)
