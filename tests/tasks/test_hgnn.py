import dataclasses

import geoopt
import pytest
import torch

from hypersst.manifolds import Lorentz
from hypersst.tasks.hgnn import (
    HGNN_HYPERPARAMETERS,
    HGNNHyperparameters,
    RELORA_WARMUP_STEPS,
    SST_GRADIENT,
    SST_ITERATIONS_PER_ROUND,
    SST_SAMPLING,
    SST_STATE_RESET,
    SST_STEPS_PER_ITERATION,
    SST_VALUE_LR_SCALE,
    SST_VECTOR_LR_RULE,
    SST_VECTOR_LR_SCALE,
    SST_WARMUP_SCOPE,
    SST_WARMUP_STEPS,
    _apply_decoupled_weight_decay,
    build_model,
    build_optimizer,
    default_sst_config,
    get_hyperparameters,
    load_graph,
    run_hgnn,
)
from hypersst.tasks.metrics import majority_class_f1, nc_metrics

METHODS = [("full", None), ("lora", 4), ("relora", 4), ("sst", 4)]


@pytest.fixture(scope="module")
def synthetic_nc():
    return load_graph("synthetic", "nc")


@pytest.fixture(scope="module")
def synthetic_lp():
    return load_graph("synthetic", "lp")


def test_hyperparameter_table_matches_hybonet_scripts():
    cora = get_hyperparameters("cora", "nc")
    assert (cora.num_layers, cora.lr, cora.weight_decay, cora.dropout, cora.margin, cora.grad_clip) == (3, 0.02, 1e-2, 0.9, 1.0, 1.0)
    airport = get_hyperparameters("airport", "nc")
    assert airport.act == "relu"
    assert airport.num_layers == 6
    disease = get_hyperparameters("disease", "lp")
    assert disease.margin == 30.0
    assert get_hyperparameters("airport", "lp").grad_clip is None
    for (dataset, task), row in HGNN_HYPERPARAMETERS.items():
        assert row.dim == 16
        if dataset != "synthetic":
            assert (row.max_epochs, row.patience, row.min_epochs) == (5000, 500, 100)
        assert (row.act == "relu") == ((dataset, task) == ("airport", "nc"))


def test_hyperparameter_table_is_read_only():
    row = get_hyperparameters("cora", "lp")
    with pytest.raises(dataclasses.FrozenInstanceError):
        row.lr = 1.0
    with pytest.raises(TypeError):
        HGNN_HYPERPARAMETERS[("cora", "lp")] = row


def test_hyperparameters_reject_bad_values():
    with pytest.raises(ValueError, match="lr > 0"):
        HGNNHyperparameters(num_layers=2, lr=0.0, weight_decay=0.0, dropout=0.0, margin=1.0, grad_clip=None)
    with pytest.raises(ValueError, match="grad_clip must be positive"):
        HGNNHyperparameters(num_layers=2, lr=0.1, weight_decay=0.0, dropout=0.0, margin=1.0, grad_clip=0.0)
    with pytest.raises(ValueError, match="act must be 'relu' or None"):
        HGNNHyperparameters(num_layers=2, lr=0.1, weight_decay=0.0, dropout=0.0, margin=1.0, grad_clip=None, act="tanh")
    with pytest.raises(TypeError, match="num_layers must be an int"):
        HGNNHyperparameters(num_layers=2.0, lr=0.1, weight_decay=0.0, dropout=0.0, margin=1.0, grad_clip=None)
    with pytest.raises(ValueError, match="num_layers >= 1"):
        HGNNHyperparameters(num_layers=0, lr=0.1, weight_decay=0.0, dropout=0.0, margin=1.0, grad_clip=None)
    with pytest.raises(ValueError, match="dataset must be one of"):
        get_hyperparameters("citeseer", "nc")
    with pytest.raises(ValueError, match="task must be one of"):
        get_hyperparameters("cora", "gc")


def test_default_sst_config():
    config = default_sst_config(4, seed=3)
    assert config.rank == 4
    assert config.seed == 3
    assert config.steps_per_iteration == SST_STEPS_PER_ITERATION == 20
    assert config.warmup_steps == SST_WARMUP_STEPS == 10
    assert config.iterations_per_round is None


def test_warmup_default_depends_on_method(synthetic_nc):
    def warmup(method, **options):
        record = run_hgnn("synthetic", "nc", method, 2, seed=0, data=synthetic_nc, epochs=2, **options)
        return record["sst"]["warmup_steps"]

    assert warmup("sst") == SST_WARMUP_STEPS
    assert warmup("relora") == RELORA_WARMUP_STEPS == 2
    assert warmup("sst", sst_warmup_steps=4) == 4
    assert warmup("relora", sst_warmup_steps=4) == 4


def test_optimizer_groups_follow_hybonet(synthetic_nc):
    hyperparameters = dataclasses.replace(get_hyperparameters("synthetic", "nc"), weight_decay=0.1)
    model = build_model("nc", synthetic_nc, hyperparameters, manifold=Lorentz(), method="sst", rank=2)
    optimizer, decayed = build_optimizer(model, hyperparameters)
    assert isinstance(optimizer, geoopt.optim.RiemannianAdam)
    names = {id(param): name for name, param in model.named_parameters()}
    decayed_names = [names[id(param)] for param in decayed]
    assert decayed_names
    assert all("bias" not in name and "scale" not in name for name in decayed_names)
    other = optimizer.param_groups[1]
    other_names = [names[id(param)] for param in other["params"]]
    assert "prototypes" in other_names
    assert "class_bias" in other_names
    assert any(name.endswith("scale") for name in other_names)
    assert optimizer.param_groups[0]["decoupled_weight_decay"] == 0.1
    assert other["decoupled_weight_decay"] == 0.0
    assert all(group["weight_decay"] == 0 for group in optimizer.param_groups)
    held = sum(len(group["params"]) for group in optimizer.param_groups)
    assert held == sum(1 for param in model.parameters() if param.requires_grad)


@pytest.mark.parametrize("scale", [1.0, 0.3])
def test_sst_vectors_get_their_own_group(synthetic_nc, scale):
    hyperparameters = dataclasses.replace(get_hyperparameters("synthetic", "nc"), weight_decay=0.1)
    model = build_model("nc", synthetic_nc, hyperparameters, manifold=Lorentz(), method="sst", rank=2)
    optimizer, decayed = build_optimizer(model, hyperparameters, vector_lr_scale=scale)
    vectors = optimizer.param_groups[-1]
    names = {id(param): name for name, param in model.named_parameters()}
    vector_names = sorted(names[id(param)] for param in vectors["params"])
    expected = sorted(name for name in names.values() if name.endswith(("Ut_active", "Vh_active")))
    assert vector_names == expected
    # HGCN's num_layers counts the decoder, so the encoder has num_layers - 1 convolutions.
    assert len(expected) == 2 * (hyperparameters.num_layers - 1)
    assert vectors["lr"] == pytest.approx(hyperparameters.lr * scale)
    assert vectors["decoupled_weight_decay"] == 0.0
    assert not {id(param) for param in decayed} & {id(param) for param in vectors["params"]}
    assert any(names[id(param)].endswith(".S") for param in decayed)


@pytest.mark.parametrize("scale", [1.0, 0.3])
def test_width_rule_slows_long_vectors(synthetic_nc, scale):
    hyperparameters = get_hyperparameters("synthetic", "nc")
    model = build_model("nc", synthetic_nc, hyperparameters, manifold=Lorentz(), method="sst", rank=2)
    optimizer, _ = build_optimizer(model, hyperparameters, vector_lr_scale=scale, vector_lr_rule="width")
    names = {id(param): name for name, param in model.named_parameters()}
    lengths = set()
    # Group 2 contains the singular values, and the vector groups follow it.
    for group in optimizer.param_groups[3:]:
        for param in group["params"]:
            assert names[id(param)].endswith(("Ut_active", "Vh_active"))
            lengths.add(param.shape[1])
            expected = hyperparameters.lr * scale * (hyperparameters.dim / param.shape[1]) ** 0.5
            assert group["lr"] == pytest.approx(expected)
            assert group["decoupled_weight_decay"] == 0.0
    # The input layer's Vh rows have one entry per feature plus the time coordinate. Hidden vectors have length dim.
    assert lengths == {hyperparameters.dim, int(synthetic_nc.x.size(1)) + 1}
    optimized = sum(len(group["params"]) for group in optimizer.param_groups)
    assert optimized == sum(1 for param in model.parameters() if param.requires_grad)


def test_width_rule_for_sphere_vectors(synthetic_nc):
    hyperparameters = get_hyperparameters("synthetic", "nc")
    options = {"vector_geometry": "sphere"}
    model = build_model("nc", synthetic_nc, hyperparameters, manifold=Lorentz(), method="sst", rank=2, linear_options=options)
    optimizer, _ = build_optimizer(model, hyperparameters, vector_lr_scale=0.5, vector_lr_rule="width")
    vector_groups = optimizer.param_groups[3:]
    assert len(vector_groups) == 1
    assert vector_groups[0]["lr"] == pytest.approx(hyperparameters.lr * 0.5 * hyperparameters.dim**0.5)
    lengths = {param.shape[1] for param in vector_groups[0]["params"]}
    assert lengths == {hyperparameters.dim, int(synthetic_nc.x.size(1)) + 1}
    assert all(isinstance(param, geoopt.ManifoldParameter) for param in vector_groups[0]["params"])


@pytest.mark.parametrize("scale", [1.0, 0.1])
def test_singular_values_get_their_own_group(synthetic_nc, scale):
    hyperparameters = dataclasses.replace(get_hyperparameters("synthetic", "nc"), weight_decay=0.1)
    model = build_model("nc", synthetic_nc, hyperparameters, manifold=Lorentz(), method="sst", rank=2)
    optimizer, decayed = build_optimizer(model, hyperparameters, vector_lr_rule="width", value_lr_scale=scale)
    names = {id(param): name for name, param in model.named_parameters()}
    values = optimizer.param_groups[2]
    expected = sorted(name for name in names.values() if name.endswith(".S"))
    assert sorted(names[id(param)] for param in values["params"]) == expected
    assert len(expected) == hyperparameters.num_layers - 1
    assert values["lr"] == pytest.approx(hyperparameters.lr * scale)
    assert values["decoupled_weight_decay"] == 0.1
    assert optimizer.param_groups[0]["lr"] == hyperparameters.lr
    assert not any(names[id(param)].endswith(".S") for param in optimizer.param_groups[0]["params"])
    assert {id(param) for param in values["params"]} <= {id(param) for param in decayed}


def test_vector_lr_rule_rejects_unknown_names(synthetic_nc):
    hyperparameters = get_hyperparameters("synthetic", "nc")
    model = build_model("nc", synthetic_nc, hyperparameters, manifold=Lorentz(), method="sst", rank=2)
    with pytest.raises(ValueError, match="vector_lr_rule must be one of"):
        build_optimizer(model, hyperparameters, vector_lr_rule="sqrt")


def test_dense_model_has_no_vector_group(synthetic_nc):
    hyperparameters = get_hyperparameters("synthetic", "nc")
    model = build_model("nc", synthetic_nc, hyperparameters, manifold=Lorentz(), method="relora", rank=2)
    optimizer, _ = build_optimizer(model, hyperparameters, vector_lr_scale=0.3)
    assert len(optimizer.param_groups) == 2
    assert all(group["lr"] == hyperparameters.lr for group in optimizer.param_groups)


@pytest.mark.parametrize("option", ["vector_lr_scale", "value_lr_scale"])
@pytest.mark.parametrize("scale", [0.0, -0.5, float("nan"), float("inf"), True, "0.3"])
def test_lr_scales_reject_bad_values(synthetic_nc, option, scale):
    hyperparameters = get_hyperparameters("synthetic", "nc")
    model = build_model("nc", synthetic_nc, hyperparameters, manifold=Lorentz(), method="sst", rank=2)
    with pytest.raises(ValueError, match=rf"{option} must be a positive finite number, got .*; pass 1.0"):
        build_optimizer(model, hyperparameters, **{option: scale})


@pytest.mark.parametrize(("key", "default"), [("vector_lr_scale", SST_VECTOR_LR_SCALE), ("value_lr_scale", SST_VALUE_LR_SCALE)])
def test_lr_scales_affect_sst_only(synthetic_nc, key, default):
    runs = {
        (method, scale): run_hgnn("synthetic", "nc", method, 2, seed=0, data=synthetic_nc, epochs=25, **{f"sst_{key}": scale})
        for method in ("sst", "relora")
        for scale in (1.0, 0.1)
    }
    assert runs[("sst", 0.1)]["sst"][key] == 0.1
    default_run = run_hgnn("synthetic", "nc", "sst", 2, seed=0, data=synthetic_nc, epochs=2)
    assert default_run["sst"][key] == default
    assert default_run["sst"]["vector_lr_rule"] == SST_VECTOR_LR_RULE
    assert key not in runs[("relora", 0.1)]["sst"]
    assert runs[("sst", 0.1)]["history"]["train_loss"] != runs[("sst", 1.0)]["history"]["train_loss"]
    assert runs[("relora", 0.1)]["history"]["train_loss"] == runs[("relora", 1.0)]["history"]["train_loss"]


@pytest.mark.parametrize("method", ["sst", "relora"])
def test_state_reset_changes_training(synthetic_nc, method):
    # 45 epochs cross two iteration boundaries (20 steps each), where the two resets differ.
    runs = {
        reset: run_hgnn("synthetic", "nc", method, 2, seed=0, data=synthetic_nc, epochs=45, sst_state_reset=reset)
        for reset in ("moments", "restart")
    }
    assert [runs[reset]["sst"]["state_reset"] for reset in ("moments", "restart")] == ["moments", "restart"]
    losses = {reset: run["history"]["train_loss"] for reset, run in runs.items()}
    assert losses["moments"][:21] == losses["restart"][:21]
    assert losses["moments"][21:] != losses["restart"][21:]
    default = run_hgnn("synthetic", "nc", method, 2, seed=0, data=synthetic_nc, epochs=2)
    assert default["sst"]["state_reset"] == SST_STATE_RESET


def test_iterations_per_round_sets_sst_resvd_period(synthetic_nc):
    # The first layer has k = 9, so by default its first re-SVD comes after 5 iterations (step 100).
    # With one iteration per round it comes after step 20.
    runs = {
        per_round: run_hgnn("synthetic", "nc", "sst", 2, seed=0, data=synthetic_nc, epochs=45, sst_iterations_per_round=per_round)
        for per_round in (1, None)
    }
    assert [runs[per_round]["sst"]["iterations_per_round"] for per_round in (1, None)] == [1, None]
    losses = {per_round: run["history"]["train_loss"] for per_round, run in runs.items()}
    assert losses[1][:20] == losses[None][:20]
    assert losses[1][21:] != losses[None][21:]
    default = run_hgnn("synthetic", "nc", "sst", 2, seed=0, data=synthetic_nc, epochs=2)
    assert default["sst"]["iterations_per_round"] == SST_ITERATIONS_PER_ROUND


def test_iterations_per_round_leaves_relora_alone(synthetic_nc):
    runs = [
        run_hgnn("synthetic", "nc", "relora", 2, seed=0, data=synthetic_nc, epochs=45, sst_iterations_per_round=per_round)
        for per_round in (1, None)
    ]
    assert runs[0]["sst"]["iterations_per_round"] is None
    assert runs[0]["history"]["train_loss"] == runs[1]["history"]["train_loss"]


def test_iterations_per_round_rejects_zero(synthetic_nc):
    with pytest.raises(ValueError, match="SSTConfig.iterations_per_round must be >= 1, got 0"):
        run_hgnn("synthetic", "nc", "sst", 2, seed=0, data=synthetic_nc, epochs=2, sst_iterations_per_round=0)


@pytest.mark.parametrize(
    ("option", "value"),
    [("sst_gradient", "default"), ("sst_sampling", "proportional"), ("sst_sampling", "sequential"), ("sst_sampling", "top")],
)
def test_gradient_sampling_change_sst_only(synthetic_nc, option, value):
    field = option.removeprefix("sst_")
    changed = run_hgnn("synthetic", "nc", "sst", 2, seed=0, data=synthetic_nc, epochs=45, **{option: value})
    default = run_hgnn("synthetic", "nc", "sst", 2, seed=0, data=synthetic_nc, epochs=45)
    assert changed["sst"][field] == value
    assert default["sst"][field] == {"gradient": SST_GRADIENT, "sampling": SST_SAMPLING}[field]
    assert changed["history"]["train_loss"] != default["history"]["train_loss"]
    relora = [
        run_hgnn("synthetic", "nc", "relora", 2, seed=0, data=synthetic_nc, epochs=45, **kwargs)
        for kwargs in ({option: value}, {})
    ]
    assert relora[0]["sst"][field] == relora[1]["sst"][field]
    assert relora[0]["history"]["train_loss"] == relora[1]["history"]["train_loss"]


@pytest.mark.parametrize("method", ["sst", "relora"])
def test_warmup_scope_changes_training(synthetic_nc, method):
    scoped = run_hgnn("synthetic", "nc", method, 2, seed=0, data=synthetic_nc, epochs=45, sst_warmup_scope="reset")
    default = run_hgnn("synthetic", "nc", method, 2, seed=0, data=synthetic_nc, epochs=45)
    assert scoped["sst"]["warmup_scope"] == "reset"
    assert default["sst"]["warmup_scope"] == SST_WARMUP_SCOPE
    assert scoped["history"]["train_loss"] != default["history"]["train_loss"]


@pytest.mark.parametrize(
    ("option", "value"), [("sst_gradient", "natural"), ("sst_sampling", "topk"), ("sst_warmup_scope", "vectors")]
)
def test_gradient_sampling_reject_unknown(synthetic_nc, option, value):
    with pytest.raises(ValueError, match=f"{option} must be one of .*, got '{value}'"):
        run_hgnn("synthetic", "nc", "relora", 2, seed=0, data=synthetic_nc, epochs=2, **{option: value})


def test_state_reset_rejects_unknown(synthetic_nc):
    with pytest.raises(ValueError, match="SSTConfig.state_reset must be one of"):
        run_hgnn("synthetic", "nc", "sst", 2, seed=0, data=synthetic_nc, epochs=2, sst_state_reset="none")


def test_decoupled_weight_decay_uses_current_lr():
    weight = torch.nn.Parameter(torch.ones(3))
    bias = torch.nn.Parameter(torch.ones(3))
    optimizer = torch.optim.SGD(
        [{"params": [weight], "decoupled_weight_decay": 0.5}, {"params": [bias], "decoupled_weight_decay": 0.0}], lr=0.1
    )
    optimizer.param_groups[0]["lr"] = 0.2  # as a warm-up factor would set it
    _apply_decoupled_weight_decay(optimizer)
    torch.testing.assert_close(weight.detach(), torch.full((3,), 0.9))
    torch.testing.assert_close(bias.detach(), torch.ones(3))


@pytest.mark.parametrize(("method", "rank"), METHODS)
def test_synthetic_nc_beats_majority(synthetic_nc, method, rank):
    record = run_hgnn("synthetic", "nc", method, rank, seed=0, data=synthetic_nc, epochs=30)
    data = synthetic_nc
    baseline = majority_class_f1(data.y[data.train_idx], data.y[data.test_idx], data.num_classes)
    majority = nc_metrics(data.y[data.test_idx], torch.zeros_like(data.y[data.test_idx]), 2)["accuracy"]
    assert record["test"]["f1"] > baseline
    assert record["test"]["accuracy"] > majority
    assert record["epochs_run"] == 30
    assert len(record["history"]["val_metric"]) == 30
    assert record["history"]["val_metric"][record["best_epoch"]] == record["val"]["f1"]


@pytest.mark.parametrize(("method", "rank"), METHODS)
def test_synthetic_lp_beats_chance(synthetic_lp, method, rank):
    record = run_hgnn("synthetic", "lp", method, rank, seed=0, data=synthetic_lp, epochs=30)
    assert record["test"]["roc_auc"] > 0.6


@pytest.mark.parametrize(("method", "rank"), METHODS)
def test_synthetic_lp_runs_and_records(synthetic_lp, method, rank):
    record = run_hgnn("synthetic", "lp", method, rank, seed=1, data=synthetic_lp, epochs=12)
    assert set(record["test"]) == {"roc_auc", "ap"}
    assert 0.0 <= record["test"]["roc_auc"] <= 1.0
    assert record["rank"] == rank
    assert record["trainable_parameters"] > 0
    assert (record["sst"] is not None) == (method in ("sst", "relora"))
    assert "split_rng_state" not in record["meta"]


def test_low_rank_trains_fewer_parameters(synthetic_nc):
    full = run_hgnn("synthetic", "nc", "full", None, seed=0, data=synthetic_nc, epochs=1)
    lora = run_hgnn("synthetic", "nc", "lora", 1, seed=0, data=synthetic_nc, epochs=1)
    assert lora["trainable_parameters"] < full["trainable_parameters"]


def test_seeds_are_reproducible_and_distinct(synthetic_nc):
    first = run_hgnn("synthetic", "nc", "sst", 2, seed=5, data=synthetic_nc, epochs=8)
    again = run_hgnn("synthetic", "nc", "sst", 2, seed=5, data=synthetic_nc, epochs=8)
    other = run_hgnn("synthetic", "nc", "sst", 2, seed=6, data=synthetic_nc, epochs=8)
    assert first["history"]["train_loss"] == again["history"]["train_loss"]
    assert first["history"]["train_loss"] != other["history"]["train_loss"]


def test_early_stopping_ends_run(synthetic_nc):
    hyperparameters = dataclasses.replace(get_hyperparameters("synthetic", "nc"), lr=1e-9, patience=3, min_epochs=5, max_epochs=200)
    record = run_hgnn("synthetic", "nc", "full", None, seed=0, data=synthetic_nc, hyperparameters=hyperparameters)
    assert record["epochs_run"] < 200
    assert record["epochs_run"] >= 7


@pytest.mark.parametrize(("manifold", "curvature"), [("lorentz", 0.02), ("lorentz", 30.0), ("poincare", -1.0), ("poincare", 0.0)])
def test_curvatures_and_manifolds_run(synthetic_nc, manifold, curvature):
    record = run_hgnn("synthetic", "nc", "sst", 2, seed=0, data=synthetic_nc, epochs=10, manifold=manifold, curvature=curvature)
    assert record["manifold"] == manifold
    assert record["curvature"] == pytest.approx(curvature)
    assert all(torch.isfinite(torch.tensor(record["history"]["train_loss"])))


def test_float64_run(synthetic_lp):
    record = run_hgnn("synthetic", "lp", "sst", 2, seed=0, data=synthetic_lp, epochs=5, dtype=torch.float64)
    assert record["epochs_run"] == 5


def test_diverging_loss_raises(synthetic_nc):
    hyperparameters = dataclasses.replace(get_hyperparameters("synthetic", "nc"), lr=1e30, grad_clip=None)
    with pytest.raises(RuntimeError, match="training loss became"):
        run_hgnn("synthetic", "nc", "full", None, seed=0, data=synthetic_nc, hyperparameters=hyperparameters, epochs=50)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        (dict(method="full", rank=4), ValueError, "takes no rank"),
        (dict(method="sst", rank=None), ValueError, "needs a positive int rank"),
        (dict(method="lora", rank=0), ValueError, "needs a positive int rank"),
        (dict(method="galore", rank=4), ValueError, "method must be one of"),
        (dict(method="full", seed=-1), ValueError, "seed must be a non-negative int"),
        (dict(method="full", epochs=0), ValueError, "epochs must be a positive int"),
        (dict(method="full", curvature=-1.0), ValueError, "must be positive and finite"),
        (dict(method="full", manifold="poincare", curvature=0.5), ValueError, "must be <= 0"),
        (dict(method="full", manifold="klein"), ValueError, "manifold must be one of"),
    ],
)
def test_run_argument_errors(synthetic_nc, kwargs, error, match):
    method = kwargs.pop("method")
    rank = kwargs.pop("rank", None)
    with pytest.raises(error, match=match):
        run_hgnn("synthetic", "nc", method, rank, data=synthetic_nc, **kwargs)


def test_load_graph_errors():
    with pytest.raises(ValueError, match="only protocol 'clean'"):
        load_graph("synthetic", "nc", protocol="hgcn")
    with pytest.raises(ValueError, match="only protocol 'clean'"):
        load_graph("synthetic", "lp", features="identity")
    with pytest.raises(ValueError, match="protocol must be one of"):
        load_graph("cora", "nc", protocol="planetoid")
    with pytest.raises(ValueError, match="features must be one of"):
        load_graph("cora", "nc", features="random")


def test_patience_override_stops_early(synthetic_nc):
    record = run_hgnn("synthetic", "nc", "full", None, seed=0, data=synthetic_nc, epochs=200, patience=1)
    assert record["hyperparameters"]["patience"] == 1
    assert record["epochs_run"] < 200


@pytest.mark.parametrize("patience", [0, 2.5, True])
def test_patience_rejects_invalid_values(synthetic_nc, patience):
    with pytest.raises(ValueError, match="patience must be a positive int"):
        run_hgnn("synthetic", "nc", "full", None, seed=0, data=synthetic_nc, epochs=2, patience=patience)
