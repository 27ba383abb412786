import inspect
import math

import geoopt
import pytest
import torch

from hypersst.lowrank import LoRALinear, ReLoRALinear
from hypersst.manifolds import Lorentz, Stereographic
from hypersst.models import (
    HyboNetEncoder,
    HyboNetLP,
    HyboNetNC,
    LorentzAggregation,
    PoincareEncoder,
    PoincareGCNLP,
    PoincareGCNNC,
    TangentAggregation,
    lorentz_gram,
    lorentz_pair_inner,
    lp_margin_loss,
    nc_margin_loss,
    normalized_adjacency,
)
from hypersst.nn import LorentzLinear
from hypersst.schedule import SSTScheduler
from hypersst.spectral import SSTLinear
from hypersst.tasks.hgnn import build_optimizer, default_sst_config, get_hyperparameters

DTYPES = [torch.float32, torch.float64]
# Relative tolerance of |<x, x>_L + k| / x_0^2, the cancellation error of the Minkowski square.
ON_MANIFOLD_RTOL = {torch.float32: 1e-5, torch.float64: 1e-12}
ATOL = {torch.float32: 1e-5, torch.float64: 1e-12}


def small_graph(num_nodes=12, seed=0):
    generator = torch.Generator().manual_seed(seed)
    # a path plus a few random chords, both directions listed
    src = torch.arange(num_nodes - 1)
    pairs = torch.stack([src, src + 1])
    chords = torch.randint(0, num_nodes, (2, 4), generator=generator)
    chords = chords[:, chords[0] != chords[1]]
    pairs = torch.cat([pairs, chords], dim=1)
    edge_index = torch.cat([pairs, pairs.flip(0)], dim=1)
    features = torch.randn(num_nodes, 5, generator=generator)
    return features, edge_index


def dense_normalized_adjacency(edge_index, num_nodes):
    dense = torch.zeros(num_nodes, num_nodes, dtype=torch.float64)
    dense[edge_index[0], edge_index[1]] = 1.0
    dense += torch.eye(num_nodes, dtype=torch.float64)
    return dense / dense.sum(dim=1, keepdim=True)


def minkowski_violation(x, k):
    inner = (x[..., 1:] ** 2).sum(dim=-1) - x[..., 0] ** 2
    return ((inner + k).abs() / x[..., 0] ** 2).max().item()


def test_normalized_adjacency_matches_dense():
    _, edge_index = small_graph()
    adjacency = normalized_adjacency(edge_index, 12, dtype=torch.float64)
    assert adjacency.is_sparse
    expected = dense_normalized_adjacency(edge_index.unique(dim=1), 12)
    torch.testing.assert_close(adjacency.to_dense(), expected)


def test_normalized_adjacency_keeps_self_loop_once():
    edge_index = torch.tensor([[0, 0, 1], [0, 1, 0]])
    dense = normalized_adjacency(edge_index, 3, dtype=torch.float64).to_dense()
    torch.testing.assert_close(dense[0], torch.tensor([0.5, 0.5, 0.0], dtype=torch.float64))
    torch.testing.assert_close(dense[2], torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64))
    torch.testing.assert_close(dense.sum(dim=1), torch.ones(3, dtype=torch.float64))


def test_normalized_adjacency_rejects_bad_input():
    with pytest.raises(ValueError, match="LongTensor of shape"):
        normalized_adjacency(torch.zeros(3, 2, dtype=torch.long), 3)
    with pytest.raises(ValueError, match="LongTensor of shape"):
        normalized_adjacency(torch.zeros(2, 2), 3)
    with pytest.raises(ValueError, match="outside"):
        normalized_adjacency(torch.tensor([[0, 5], [5, 0]]), 3)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("k", [1.0, 0.05, 20.0])
def test_lorentz_aggregation_is_weighted_centroid(dtype, k):
    torch.manual_seed(1)
    manifold = Lorentz(k=k)
    _, edge_index = small_graph()
    # geodesic radii of about sqrt(k): far points lose float32 accuracy in any centroid formula
    tangent = math.sqrt(k) * torch.cat([torch.zeros(12, 1), torch.randn(12, 4)], dim=1).to(dtype)
    points = manifold.expmap0(tangent, dim=-1)
    result = LorentzAggregation(manifold)(points, edge_index)

    # float64 reference, so that float32 cancellation in the Minkowski square does not enter it
    weighted = dense_normalized_adjacency(edge_index, 12) @ points.double()
    norm = torch.sqrt(-lorentz_pair_inner(weighted, weighted))
    expected = (math.sqrt(k) * weighted / norm.unsqueeze(-1)).to(dtype)
    rtol = {torch.float32: 1e-3, torch.float64: 1e-10}[dtype]
    torch.testing.assert_close(result, expected, rtol=rtol, atol=rtol * math.sqrt(k))
    assert minkowski_violation(result, k) < ON_MANIFOLD_RTOL[dtype]


def test_lorentz_gram_matches_pairwise_inner():
    x = torch.randn(4, 6, dtype=torch.float64)
    y = torch.randn(3, 6, dtype=torch.float64)
    gram = lorentz_gram(x, y)
    expected = lorentz_pair_inner(x.unsqueeze(1), y.unsqueeze(0))
    torch.testing.assert_close(gram, expected)


def test_nc_margin_loss_matches_loop():
    torch.manual_seed(0)
    scores = torch.randn(5, 3, dtype=torch.float64)
    labels = torch.tensor([0, 2, 1, 1, 0])
    expected = sum(max(0.0, 1.5 - scores[i, labels[i]].item() + scores[i, j].item()) for i in range(5) for j in range(3)) / 15
    assert nc_margin_loss(scores, labels, 1.5).item() == pytest.approx(expected)


def test_lp_margin_loss_formula():
    pos = torch.tensor([-0.1, -2.0])
    neg = torch.tensor([-3.0, -0.5])
    # hinge terms: max(0, 2 + 0.1 - 3) = 0 and max(0, 2 + 2 - 0.5) = 3.5
    assert lp_margin_loss(pos, neg, 2.0).item() == pytest.approx(0.5 * (2.0 + 3.5 / 2))
    with pytest.raises(ValueError, match="pairs each positive"):
        lp_margin_loss(pos, neg[:1], 2.0)


def test_nc_depth_and_methods():
    features, _ = small_graph()
    manifold = Lorentz()
    model = HyboNetNC(5, 3, dim=8, num_layers=4, manifold=manifold, method="lora", rank=2)
    assert len(model.encoder.layers) == 3
    assert all(isinstance(layer.linear.linear, LoRALinear) for layer in model.encoder.layers)
    assert isinstance(model.prototypes, geoopt.ManifoldParameter)
    assert model.prototypes.shape == (3, 8)
    lp = HyboNetLP(5, dim=8, num_layers=2, manifold=manifold, method="sst", rank=2)
    assert len(lp.encoder.layers) == 2
    assert all(isinstance(layer.linear.linear, SSTLinear) for layer in lp.encoder.layers)
    relora = HyboNetLP(5, dim=8, num_layers=1, manifold=manifold, method="relora", rank=2)
    assert isinstance(relora.encoder.layers[0].linear.linear, ReLoRALinear)


def test_nonlinearity_skips_first_layer():
    relu = torch.nn.ReLU()
    model = HyboNetNC(5, 3, dim=8, num_layers=4, manifold=Lorentz(), nonlin=relu)
    layers = model.encoder.layers
    assert layers[0].linear.nonlin is None
    assert all(layer.linear.nonlin is relu for layer in layers[1:])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("k", [1.0, 0.3, 4.0])
def test_nc_scores_are_negative_lorentzian_sqdist(dtype, k):
    torch.manual_seed(0)
    features, edge_index = small_graph()
    manifold = Lorentz(k=k)
    model = HyboNetNC(5, 3, dim=8, num_layers=3, manifold=manifold, dtype=dtype).to(dtype)
    with torch.no_grad():
        model.class_bias.copy_(torch.tensor([0.5, -1.0, 0.0], dtype=dtype))
        h = model.encoder(features.to(dtype), edge_index)
        scores = model.decode(h)
        expected = -manifold.lorentz_sqdist(h.unsqueeze(1), model.prototypes.unsqueeze(0), dim=-1) + model.class_bias
    torch.testing.assert_close(scores, expected, rtol=1e-4, atol=1e-4 if dtype == torch.float32 else 1e-9)
    assert manifold.check_point(model.prototypes.detach()) is None


@pytest.mark.parametrize("k", [1.0, 5.0])
def test_lp_score_is_zero_on_self_pairs(k):
    features, edge_index = small_graph()
    model = HyboNetLP(5, dim=8, num_layers=2, manifold=Lorentz(k=k)).to(torch.float64)
    with torch.no_grad():
        h = model(features.double(), edge_index)
        self_scores = model.score(h, torch.arange(12).repeat(2, 1))
        pair_scores = model.score(h, edge_index)
    torch.testing.assert_close(self_scores, torch.zeros(12, dtype=torch.float64), rtol=0, atol=1e-9)
    assert (pair_scores <= 1e-9).all()


def collect_lorentz_outputs(model):
    outputs = []

    def hook(module, inputs, output):
        outputs.append((type(module).__name__, output.detach()))

    handles = [
        module.register_forward_hook(hook) for module in model.modules() if isinstance(module, (LorentzLinear, LorentzAggregation))
    ]
    return outputs, handles


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("k", [1.0, 0.02, 50.0])
@pytest.mark.parametrize("method", ["full", "sst", "relora"])
def test_every_layer_stays_on_hyperboloid_during_training(dtype, k, method):
    torch.manual_seed(3)
    features, edge_index = small_graph(num_nodes=30, seed=3)
    labels = torch.randint(0, 3, (30,))
    manifold = Lorentz(k=k)
    rank = None if method == "full" else 2
    model = HyboNetNC(5, 3, dim=8, num_layers=3, manifold=manifold, method=method, rank=rank, dropout=0.1, dtype=dtype).to(dtype)
    hyperparameters = get_hyperparameters("synthetic", "nc")
    optimizer, _ = build_optimizer(model, hyperparameters)
    scheduler = None
    if method != "full":
        scheduler = SSTScheduler(model, optimizer, default_sst_config(2, steps_per_iteration=4, warmup_steps=2))
    outputs, handles = collect_lorentz_outputs(model)
    adjacency = normalized_adjacency(edge_index, 30, dtype=dtype)
    for _ in range(12):
        model.train()
        optimizer.zero_grad()
        loss = nc_margin_loss(model(features.to(dtype), adjacency), labels, 1.0)
        loss.backward()
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
    for handle in handles:
        handle.remove()

    assert len(outputs) == 12 * 4
    for name, output in outputs:
        assert torch.isfinite(output).all(), name
        assert minkowski_violation(output, k) < ON_MANIFOLD_RTOL[dtype], name
    assert minkowski_violation(model.prototypes.detach(), k) < ON_MANIFOLD_RTOL[dtype]


def test_input_embedding_cap_and_overflow():
    manifold = Lorentz()
    features = torch.zeros(2, 3)
    features[0, 0] = 500.0
    uncapped = HyboNetLP(3, dim=4, num_layers=1, manifold=manifold)
    with pytest.raises(RuntimeError, match="input_max_norm"):
        uncapped.encoder.embed_input(features)
    capped = HyboNetLP(3, dim=4, num_layers=1, manifold=manifold, input_max_norm=10.0)
    points = capped.encoder.embed_input(features)
    assert torch.isfinite(points).all()
    # the capped row lies at geodesic distance 10 from the origin, the zero row at the origin
    torch.testing.assert_close(points[:, 0], torch.tensor([math.cosh(10.0), 1.0]), rtol=1e-5, atol=1e-5)


def test_sparse_identity_features_are_accepted():
    _, edge_index = small_graph()
    identity = torch.sparse_coo_tensor(torch.arange(12).repeat(2, 1), torch.ones(12), (12, 12), check_invariants=True).coalesce()
    model = HyboNetNC(12, 2, dim=4, num_layers=2, manifold=Lorentz())
    assert model(identity, edge_index).shape == (12, 2)


def test_model_argument_errors():
    with pytest.raises(TypeError, match="hypersst.manifolds.lorentz.Lorentz"):
        HyboNetNC(5, 3, manifold=Stereographic(k=-1.0))
    with pytest.raises(TypeError, match="Stereographic"):
        PoincareGCNLP(5, manifold=Lorentz())
    with pytest.raises(ValueError, match="num_classes must be at least 2"):
        HyboNetNC(5, 1, manifold=Lorentz())
    with pytest.raises(ValueError, match="num_layers must be at least 2"):
        HyboNetNC(5, 3, num_layers=1, manifold=Lorentz())
    with pytest.raises(ValueError, match="input_max_norm must be positive"):
        HyboNetLP(5, manifold=Lorentz(), input_max_norm=0.0)
    with pytest.raises(TypeError, match="in_features must be an int"):
        HyboNetLP(5.0, manifold=Lorentz())
    features, _ = small_graph()
    with pytest.raises(ValueError, match="adjacency has shape"):
        HyboNetLP(5, manifold=Lorentz())(features, normalized_adjacency(torch.tensor([[0], [1]]), 3))


# (classifier, link predictor, encoder, manifold, manifold of the other family)
MODEL_FAMILIES = [
    (HyboNetNC, HyboNetLP, HyboNetEncoder, Lorentz, lambda: Stereographic(k=-1.0)),
    (PoincareGCNNC, PoincareGCNLP, PoincareEncoder, lambda: Stereographic(k=-1.0), Lorentz),
]


@pytest.mark.parametrize("classifier, predictor, encoder, manifold, other_manifold", MODEL_FAMILIES)
def test_model_errors_name_concrete_class(classifier, predictor, encoder, manifold, other_manifold):
    with pytest.raises(TypeError, match=f"^{classifier.__name__}: manifold must be"):
        classifier(5, 3, manifold=other_manifold())
    with pytest.raises(TypeError, match=f"^{predictor.__name__}: manifold must be"):
        predictor(5, manifold=other_manifold())
    with pytest.raises(ValueError, match=f"^{classifier.__name__}: num_classes must be at least 2, got 1"):
        classifier(5, 1, manifold=manifold())
    with pytest.raises(TypeError, match=f"^{classifier.__name__}: num_layers must be an int, got float"):
        classifier(5, 3, num_layers=2.0, manifold=manifold())
    # The encoder validates the options it receives, so its own name is in the message.
    with pytest.raises(ValueError, match=f"^{encoder.__name__}: num_convolutions must be at least 1, got 0"):
        predictor(5, num_layers=0, manifold=manifold())
    with pytest.raises(ValueError, match=f"^{encoder.__name__}: dim must be at least 2, got 1"):
        classifier(5, 3, dim=1, manifold=manifold())


@pytest.mark.parametrize(
    "lorentz_model, poincare_model",
    [(HyboNetEncoder, PoincareEncoder), (HyboNetNC, PoincareGCNNC), (HyboNetLP, PoincareGCNLP)],
)
def test_poincare_models_take_lorentz_arguments(lorentz_model, poincare_model):
    assert inspect.signature(poincare_model) == inspect.signature(lorentz_model)


def test_state_dict_keys_are_stable():
    # Saved checkpoints load only while these keys stay the same.
    convolution = ["linear.scale", "linear.manifold.k_value", "linear.linear.weight", "linear.linear.bias"]
    convolution.append("aggregation.manifold.k_value")
    lorentz_layers = [f"encoder.layers.{index}.{key}" for index in range(2) for key in convolution]
    linear = ["bias", "manifold.k_value", "linear.weight"]
    poincare_layers = [f"encoder.linears.{index}.{key}" for index in range(2) for key in linear]
    poincare_layers.append("encoder.aggregation.manifold.k_value")
    head = ["prototypes", "class_bias"]
    encoder = ["manifold.k_value", "encoder.manifold.k_value"]
    cases = [
        (HyboNetNC(5, 3, dim=4, num_layers=3, manifold=Lorentz()), head + encoder + lorentz_layers),
        (HyboNetLP(5, dim=4, num_layers=2, manifold=Lorentz()), encoder + lorentz_layers),
        (PoincareGCNNC(5, 3, dim=4, num_layers=3, manifold=Stereographic(k=-1.0)), head + encoder + poincare_layers),
        (PoincareGCNLP(5, dim=4, num_layers=2, manifold=Stereographic(k=-1.0)), encoder + poincare_layers),
    ]
    for model, keys in cases:
        assert list(model.state_dict()) == keys, type(model).__name__


def test_tangent_aggregation_is_mean_at_zero_curvature():
    torch.manual_seed(0)
    _, edge_index = small_graph()
    x = torch.randn(12, 4, dtype=torch.float64)
    result = TangentAggregation(Stereographic(k=0.0))(x, edge_index)
    torch.testing.assert_close(result, dense_normalized_adjacency(edge_index, 12) @ x)


@pytest.mark.parametrize("kappa", [-1.0, -0.25, 0.0])
def test_poincare_models_stay_in_ball(kappa):
    torch.manual_seed(0)
    features, edge_index = small_graph()
    manifold = Stereographic(k=kappa)
    nc = PoincareGCNNC(5, 3, dim=8, num_layers=3, manifold=manifold, nonlin=torch.nn.ReLU(), input_max_norm=10.0).double()
    lp = PoincareGCNLP(5, dim=8, num_layers=2, manifold=manifold, method="sst", rank=2).double()
    scores = nc(features.double(), edge_index)
    h = lp(features.double(), edge_index)
    assert scores.shape == (12, 3)
    assert h.shape == (12, 7)
    if kappa < 0:
        assert (h.norm(dim=-1) < 1 / math.sqrt(-kappa)).all()
    pair_scores = lp.score(h, edge_index)
    assert (pair_scores <= 0).all()
    if kappa == 0.0:
        # geoopt's stereographic distance at kappa = 0 is twice the Euclidean distance
        expected = -4 * (h[edge_index[0]] - h[edge_index[1]]).pow(2).sum(dim=-1)
        torch.testing.assert_close(pair_scores, expected)
