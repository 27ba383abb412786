"""Tests for hypersst.data.splits on small graphs built in the test."""

import numpy as np
import pytest
import torch
from torch_geometric.data import Data

from hypersst.data import sample_train_negatives
from hypersst.data.splits import (
    _UpperNonEdges,
    clean_edge_split,
    clean_node_split,
    hgcn_edge_split,
    hgcn_node_split,
)

SEEDS = (0, 1, 1234)


def _random_graph(num_nodes, num_edges, seed, self_loops=2):
    rng = np.random.default_rng(seed)
    edges = rng.integers(0, num_nodes, size=(num_edges, 2))
    loops = rng.integers(0, num_nodes, size=self_loops)
    return np.concatenate([edges, np.stack([loops, loops], axis=1)])


def _keys(pairs, num_nodes):
    pairs = np.sort(np.asarray(pairs), axis=1)
    return pairs[:, 0] * num_nodes + pairs[:, 1]


@pytest.mark.parametrize("seed", SEEDS)
def test_legacy_shuffle_of_index_equals_shuffle_of_rows(seed):
    rows = np.arange(2 * 5000).reshape(-1, 2)
    index = np.arange(5000)
    np.random.RandomState(seed).shuffle(rows)
    np.random.RandomState(seed).shuffle(index)
    np.testing.assert_array_equal(rows, np.arange(2 * 5000).reshape(-1, 2)[index])


@pytest.mark.parametrize("seed", SEEDS)
def test_non_edge_decoding_matches_dense_enumeration(seed):
    num_nodes = 40
    edges = _random_graph(num_nodes, 120, seed, self_loops=3)
    adjacency = np.zeros((num_nodes, num_nodes), dtype=np.int8)
    adjacency[edges[:, 0], edges[:, 1]] = 1
    adjacency[edges[:, 1], edges[:, 0]] = 1
    expected = np.stack(np.triu(1 - adjacency).nonzero(), axis=1)

    index = _UpperNonEdges(edges, num_nodes)
    assert index.num_pairs == len(expected)
    np.testing.assert_array_equal(index.decode(np.arange(index.num_pairs)), expected)


def test_hgcn_node_split_binary_is_disjoint():
    labels = np.array([0] * 30 + [1] * 20)
    train, val, test = hgcn_node_split(labels, 0.1, 0.3, seed=5)
    # round(0.1 * 20) = 2 and round(0.3 * 20) = 6 nodes of each class
    assert (len(val), len(test), len(train)) == (4, 12, 34)
    assert len(np.unique(np.concatenate([train, val, test]))) == 50
    assert labels[val].sum() == 2


def test_hgcn_node_split_uses_half_to_even_rounding():
    labels = np.array([0] * 25 + [1] * 25)
    _, val, _ = hgcn_node_split(labels, 0.1, 0.1, seed=0)
    # 0.1 * 25 = 2.5 rounds to 2 under Python's round
    assert len(val) == 4


def test_hgcn_node_split_overlaps_on_multiclass():
    labels = np.repeat([0, 1, 2, 3], 25)
    train, val, test = hgcn_node_split(labels, 0.2, 0.2, seed=3)
    # class 2 and 3 nodes are in both lists, so some appear twice
    combined = np.concatenate([train, val, test])
    assert len(combined) == 150
    assert len(np.unique(combined)) == 100
    nodes, counts = np.unique(combined, return_counts=True)
    assert set(labels[nodes[counts > 1]].tolist()) == {2, 3}
    assert set(labels[nodes[counts == 1]].tolist()) == {0, 1}


@pytest.mark.parametrize("seed", SEEDS)
def test_clean_node_split_disjoint(seed):
    labels = np.random.default_rng(seed).integers(0, 3, size=300)
    train, val, test = clean_node_split(labels, 0.15, 0.15, seed)
    combined = np.concatenate([train, val, test])
    assert len(np.unique(combined)) == len(combined) == 300
    assert (len(val), len(test)) == (45, 45)


@pytest.mark.parametrize("seed", SEEDS)
def test_clean_edge_split_invariants(seed):
    num_nodes = 60
    edges = _random_graph(num_nodes, 300, seed)
    split = clean_edge_split(edges, num_nodes, seed=seed)
    positives = np.unique(np.sort(edges, axis=1), axis=0)
    positives = positives[positives[:, 0] != positives[:, 1]]
    positive_keys = set(_keys(positives, num_nodes).tolist())

    split_positives = [split[k] for k in ("train_pos", "val_pos", "test_pos")]
    split_keys = np.concatenate([_keys(p, num_nodes) for p in split_positives])
    assert sorted(split_keys.tolist()) == sorted(positive_keys)
    negatives = np.concatenate([split["val_neg"], split["test_neg"]])
    assert (negatives[:, 0] < negatives[:, 1]).all()
    assert not positive_keys & set(_keys(negatives, num_nodes).tolist())
    assert len(np.unique(_keys(negatives, num_nodes))) == len(negatives)
    assert len(split["val_neg"]) == len(split["val_pos"]) == int(len(positives) * 0.05)


def test_clean_edge_split_complete_graph_rejected():
    rows, cols = np.triu_indices(6, k=1)
    with pytest.raises(ValueError, match="only 0 non-adjacent pairs"):
        clean_edge_split(np.stack([rows, cols], axis=1), 6, val_prop=0.2, test_prop=0.2)


def test_hgcn_edge_split_refuses_huge_graph():
    with pytest.raises(NotImplementedError, match="use protocol='clean'"):
        hgcn_edge_split(np.array([[0, 1]]), 30_000)


def _lp_data(split, num_nodes, protocol):
    data = Data(num_nodes=num_nodes)
    for key in ("train_pos", "val_pos", "val_neg", "test_pos", "test_neg", "all_pos"):
        data[key] = torch.from_numpy(np.ascontiguousarray(split[key].T))
    data.meta = {"task": "lp", "protocol": protocol}
    if protocol == "hgcn":
        data.hgcn_neg_perm = torch.from_numpy(split["neg_perm"])
    return data


@pytest.mark.parametrize("seed", SEEDS)
def test_clean_train_negatives_on_dense_graph(seed):
    # half of all pairs are edges, so many draws are rejected and must be topped up
    num_nodes = 30
    rows, cols = np.triu_indices(num_nodes, k=1)
    keep = np.random.default_rng(seed).random(len(rows)) < 0.5
    edges = np.stack([rows[keep], cols[keep]], axis=1)
    data = _lp_data(clean_edge_split(edges, num_nodes, seed=seed), num_nodes, "clean")
    negatives = sample_train_negatives(data, 5000, generator=torch.Generator().manual_seed(seed))
    assert negatives.shape == (2, 5000)
    assert (negatives[0] < negatives[1]).all()
    assert not np.isin(_keys(negatives.t().numpy(), num_nodes), _keys(edges, num_nodes)).any()
    # every non-edge is reachable: 5000 draws over about 218 pairs cover them all
    num_non_edges = num_nodes * (num_nodes - 1) // 2 - len(edges)
    assert len(np.unique(_keys(negatives.t().numpy(), num_nodes))) == num_non_edges


@pytest.mark.parametrize("seed", SEEDS)
def test_hgcn_train_negatives_come_from_pool(seed):
    num_nodes = 50
    edges = _random_graph(num_nodes, 200, seed)
    split = hgcn_edge_split(edges, num_nodes, seed=seed)
    data = _lp_data(split, num_nodes, "hgcn")
    negatives = sample_train_negatives(data, 3000, generator=torch.Generator().manual_seed(seed)).t().numpy()
    train_keys = set(_keys(split["train_pos"], num_nodes).tolist())
    # the pool contains non-edges (self-pairs included) and the held-out positives, never training edges
    assert not train_keys & set(_keys(negatives, num_nodes).tolist())
    assert (negatives[:, 0] <= negatives[:, 1]).all()
