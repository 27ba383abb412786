"""Tests for hypersst.data.synthetic.make_synthetic_hierarchy."""

import networkx as nx
import numpy as np
import pytest
import scipy.sparse as sp
import torch
from sklearn.linear_model import LogisticRegression

from hypersst.data import make_synthetic_hierarchy, sample_train_negatives

NC_FIELDS = {"x", "y", "edge_index", "train_idx", "val_idx", "test_idx", "num_classes", "meta"}
LP_FIELDS = {"x", "edge_index", "train_pos", "val_pos", "val_neg", "test_pos", "test_neg", "meta"}


def _tensor_fields(data):
    return {key: value for key, value in data.to_dict().items() if isinstance(value, torch.Tensor)}


@pytest.mark.parametrize("task", ["nc", "lp"])
@pytest.mark.parametrize("seed", [0, 1, 7])
def test_same_seed_same_graph(task, seed):
    first = _tensor_fields(make_synthetic_hierarchy(300, seed=seed, task=task))
    second = _tensor_fields(make_synthetic_hierarchy(300, seed=seed, task=task))
    assert first.keys() == second.keys()
    for key in first:
        assert torch.equal(first[key], second[key]), key


@pytest.mark.parametrize("task", ["nc", "lp"])
def test_different_seed_different_graph(task):
    first = make_synthetic_hierarchy(300, seed=0, task=task)
    second = make_synthetic_hierarchy(300, seed=1, task=task)
    assert not torch.equal(first.x, second.x)
    assert not torch.equal(first.edge_index, second.edge_index)


@pytest.mark.parametrize("seed", [0, 3])
def test_nc_graph_is_a_tree(seed):
    data = make_synthetic_hierarchy(500, seed=seed, feature_dim=6)
    assert NC_FIELDS <= set(data.keys())
    assert data.x.shape == (500, 6)
    assert data.x.dtype == torch.float32
    assert data.num_classes == 2
    assert data.edge_index.shape == (2, 2 * 499)
    assert (data.edge_index[0] != data.edge_index[1]).all()
    graph = nx.Graph(data.edge_index.t().tolist())
    assert nx.is_tree(graph)
    assert data.meta["comparable"] is False

    parts = torch.cat([data.train_idx, data.val_idx, data.test_idx])
    assert len(torch.unique(parts)) == len(parts) == 500


@pytest.mark.parametrize("seed", [0, 3])
def test_lp_fields_and_clean_negatives(seed):
    data = make_synthetic_hierarchy(400, seed=seed, task="lp")
    assert LP_FIELDS <= set(data.keys())
    assert data.meta["task"] == "lp"
    positives = set(map(tuple, data.all_pos.t().tolist()))
    assert len(positives) == 399
    for split in ("val_neg", "test_neg"):
        pairs = data[split].t().tolist()
        assert all(i < j for i, j in pairs)
        assert not positives & set(map(tuple, pairs))
    generator = torch.Generator().manual_seed(seed)
    for _ in range(20):
        negatives = sample_train_negatives(data, data.train_pos.size(1), generator=generator)
        assert (negatives[0] < negatives[1]).all()
        assert not positives & set(map(tuple, negatives.t().tolist()))


def _test_accuracy(features, data):
    train, test = data.train_idx.numpy(), data.test_idx.numpy()
    labels = data.y.numpy()
    model = LogisticRegression(max_iter=1000).fit(features[train], labels[train])
    return model.score(features[test], labels[test])


@pytest.mark.parametrize("seed", [0, 1, 3])
def test_labels_learnable_from_features_and_graph(seed):
    data = make_synthetic_hierarchy(1000, seed=seed)
    labels = data.y.numpy()
    test = data.test_idx.numpy()
    majority = np.mean(labels[test] == np.bincount(labels[data.train_idx.numpy()]).argmax())

    features = data.x.numpy()
    assert _test_accuracy(features, data) > majority + 0.05

    # graph position alone: the mean features of a node's neighbours, without its own
    rows, cols = data.edge_index.numpy()
    adjacency = sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(1000, 1000))
    neighbour_mean = (adjacency @ features) / adjacency.sum(axis=1).A
    assert _test_accuracy(neighbour_mean, data) > majority + 0.05


def test_tiny_graph_still_splits():
    for seed in range(20):
        data = make_synthetic_hierarchy(20, seed=seed)
        assert len(data.train_idx) + len(data.val_idx) + len(data.test_idx) == 20


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"num_nodes": 10}, ValueError, "num_nodes must be >= 20, got 10"),
        ({"num_nodes": 100.0}, TypeError, "num_nodes must be an int"),
        ({"task": "gc"}, ValueError, "unknown task 'gc'"),
        ({"feature_dim": 2}, ValueError, "feature_dim must be an int >= 3"),
        ({"transmission": 0.0}, ValueError, "transmission must be > 0"),
        ({"noise": -1.0}, ValueError, "noise must be >= 0"),
        ({"val_prop": 0.6, "test_prop": 0.5}, ValueError, "sum below 1"),
    ],
)
def test_invalid_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        make_synthetic_hierarchy(**kwargs)
