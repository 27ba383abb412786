"""Tests for hypersst.data.graphs against the published statistics of the HGNN benchmark files."""

import os
import pickle
import shutil

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from hypersst.data import load_hgnn_dataset, sample_train_negatives
from hypersst.data.graphs import restricted_load

IDENTITY_NOTE = "identity features, not comparable with published numbers"

# name, task, features -> nodes, undirected edges without self-loops, feature columns, class counts
NC_STATS = {
    ("airport", "auto"): (3188, 18630, 11, [521, 1443, 999, 225]),
    ("cora", "auto"): (2708, 5278, 1433, [351, 217, 418, 818, 426, 298, 180]),
    ("disease", "identity"): (1044, 1043, 1044, [833, 211]),
    ("pubmed", "identity"): (19717, 44324, 19717, [4103, 7739, 7875]),
}

# name -> nodes, feature columns, (val, test, train) positives under hgcn, and under clean
LP_STATS = {
    "airport": (3188, 12, (931, 1863, 15837), (931, 1863, 15836)),
    "cora": (2708, 1433, (263, 527, 4488), (263, 527, 4488)),
    "disease": (2665, 11, (133, 266, 2265), (133, 266, 2265)),
}

LP_FOLDERS = {"airport": "airport", "cora": "cora", "disease": "disease_lp", "pubmed": "pubmed"}


def _csv_pairs(root, folder):
    edges = np.loadtxt(root / folder / f"{folder}.edges.csv", delimiter=",", dtype=np.int64)
    return np.unique(np.sort(edges, axis=1), axis=0)


def _keys(pairs, num_nodes):
    pairs = np.sort(np.asarray(pairs).reshape(-1, 2), axis=1)
    return pairs[:, 0] * num_nodes + pairs[:, 1]


# ---------------------------------------------------------------------------------------------
# Statistics
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("protocol", ["clean", "hgcn"])
@pytest.mark.parametrize(("name", "features"), list(NC_STATS))
def test_nc_statistics(load, name, features, protocol):
    nodes, edges, width, counts = NC_STATS[(name, features)]
    data = load(name, "nc", protocol, features)
    assert data.num_nodes == nodes
    assert data.x.shape == (nodes, width)
    assert data.x.dtype == torch.float32
    assert data.edge_index.shape == (2, 2 * edges)
    assert data.num_classes == len(counts)
    assert torch.bincount(data.y).tolist() == counts
    assert data.y.dtype == torch.long


@pytest.mark.parametrize("protocol", ["clean", "hgcn"])
@pytest.mark.parametrize("name", list(LP_STATS))
def test_lp_statistics(load, name, protocol):
    nodes, width, hgcn_sizes, clean_sizes = LP_STATS[name]
    data = load(name, "lp", protocol)
    num_val, num_test, num_train = hgcn_sizes if protocol == "hgcn" else clean_sizes
    assert data.num_nodes == nodes
    assert data.x.shape == (nodes, width)
    assert data.val_pos.shape == data.val_neg.shape == (2, num_val)
    assert data.test_pos.shape == data.test_neg.shape == (2, num_test)
    assert data.train_pos.shape == (2, num_train)


def test_edge_index_is_symmetric_without_self_loops(load):
    for name, task in [("airport", "nc"), ("cora", "nc"), ("airport", "lp"), ("disease", "lp")]:
        edge_index = load(name, task).edge_index
        assert (edge_index[0] != edge_index[1]).all()
        forward = set(map(tuple, edge_index.t().tolist()))
        assert forward == {(j, i) for i, j in forward}


def test_meta_fields(load):
    data = load("cora", "nc", "hgcn")
    assert data.meta["name"] == "cora"
    assert data.meta["task"] == "nc"
    assert data.meta["protocol"] == "hgcn"
    assert data.meta["comparable"] is True
    assert isinstance(data.meta["note"], str)
    assert load("airport", "lp", "clean").meta["comparable"] is False


# ---------------------------------------------------------------------------------------------
# Preprocessing
# ---------------------------------------------------------------------------------------------


def test_airport_nc_features(load, hgnn_root):
    raw = np.load(hgnn_root / "airport" / "airport.feats.npy")[:, :4]
    row_sum = raw.sum(axis=1, keepdims=True)
    expected = np.divide(raw, row_sum, out=np.zeros_like(raw), where=row_sum != 0)
    x = load("airport", "nc").x.double().numpy()
    np.testing.assert_allclose(x[:, :4], expected, rtol=1e-6, atol=1e-6)

    # networkx counts a self-loop once in the adjacency that HGCN sums for the degree
    pairs = _csv_pairs(hgnn_root, "airport")
    degree = np.bincount(pairs.reshape(-1), minlength=3188)
    degree -= np.bincount(pairs[pairs[:, 0] == pairs[:, 1], 0], minlength=3188)
    np.testing.assert_array_equal(x[:, 4:10].argmax(axis=1), np.minimum(degree, 5))
    np.testing.assert_array_equal(x[:, 4:10].sum(axis=1), np.ones(3188))
    np.testing.assert_array_equal(x[:, 10], np.ones(3188))


@pytest.mark.parametrize("protocol", ["clean", "hgcn"])
def test_airport_lp_degree_uses_training_graph(load, hgnn_root, protocol):
    data = load("airport", "lp", protocol)
    raw = np.load(hgnn_root / "airport" / "airport.feats.npy")
    expected = raw / raw.sum(axis=1, keepdims=True)
    x = data.x.double().numpy()
    np.testing.assert_allclose(x[:, :5], expected, rtol=1e-6, atol=1e-6)
    # A_train + A_train^T: a training self-loop counts twice
    degree = np.bincount(data.train_pos.reshape(-1).numpy(), minlength=3188)
    np.testing.assert_array_equal(x[:, 5:11].argmax(axis=1), np.minimum(degree, 5))


def test_cora_rows_are_normalized(load):
    row_sum = load("cora", "nc").x.sum(dim=1)
    assert torch.allclose(row_sum, torch.ones_like(row_sum), atol=1e-5)


def test_disease_lp_features_not_normalized(load, hgnn_root):
    raw = sp.load_npz(hgnn_root / "disease_lp" / "disease_lp.feats.npz").toarray()
    np.testing.assert_allclose(load("disease", "lp").x.double().numpy(), raw, rtol=1e-6, atol=1e-6)


def test_identity_features_meta(load):
    data = load("disease", "nc", "hgcn", "identity")
    assert data.x.is_sparse
    assert torch.equal(data.x.to_dense(), torch.eye(1044))
    assert data.meta["comparable"] is False
    assert data.meta["note"] == IDENTITY_NOTE


# ---------------------------------------------------------------------------------------------
# Node splits
# ---------------------------------------------------------------------------------------------


def test_airport_nc_hgcn_split_overlap(load):
    data = load("airport", "nc", "hgcn")
    assert len(data.train_idx) == 3364
    assert len(data.val_idx) == 524
    assert len(data.test_idx) == 524
    train, val, test = (set(data[k].tolist()) for k in ("train_idx", "val_idx", "test_idx"))
    assert (len(train), len(val), len(test)) == (2691, 505, 506)
    assert len(val & test) == 43
    assert len(val & train) == 246
    assert len(test & train) == 225


def test_disease_nc_hgcn_split(load):
    data = load("disease", "nc", "hgcn", "identity")
    assert len(data.val_idx) == 42
    assert len(data.test_idx) == 254
    assert len(data.train_idx) == 748
    assert int(data.y[data.val_idx].sum()) == 21
    assert int(data.y[data.test_idx].sum()) == 127
    assert int(data.y[data.train_idx].sum()) == 63
    parts = [set(data[k].tolist()) for k in ("train_idx", "val_idx", "test_idx")]
    assert sum(map(len, parts)) == len(set.union(*parts)) == 1044


@pytest.mark.parametrize("protocol", ["clean", "hgcn"])
@pytest.mark.parametrize(("name", "num_train"), [("cora", 140), ("pubmed", 60)])
def test_planetoid_fixed_split(load, hgnn_root, name, num_train, protocol):
    data = load(name, "nc", protocol, "auto" if name == "cora" else "identity")
    test_ids = np.loadtxt(hgnn_root / name / f"ind.{name}.test.index", dtype=np.int64)
    assert data.train_idx.tolist() == list(range(num_train))
    assert data.val_idx.tolist() == list(range(num_train, num_train + 1000))
    assert sorted(data.test_idx.tolist()) == sorted(test_ids.tolist())


@pytest.mark.parametrize(
    ("name", "features", "sizes"),
    [("airport", "auto", (2231, 478, 479)), ("disease", "identity", (313, 104, 627))],
)
def test_clean_nc_split_disjoint_stratified(load, name, features, sizes):
    data = load(name, "nc", "clean", features)
    parts = [data[k] for k in ("train_idx", "val_idx", "test_idx")]
    assert tuple(len(p) for p in parts) == sizes
    union = torch.cat(parts)
    assert len(torch.unique(union)) == len(union) == data.num_nodes
    overall = torch.bincount(data.y, minlength=data.num_classes).double() / data.num_nodes
    for part in parts:
        share = torch.bincount(data.y[part], minlength=data.num_classes).double() / len(part)
        # stratification keeps each class share within one node of the overall share
        assert torch.all((share - overall).abs() <= 1.0 / len(part) + 1e-12)


# ---------------------------------------------------------------------------------------------
# Link-prediction splits
# ---------------------------------------------------------------------------------------------


def _check_clean_lp(data, csv_pairs):
    num_nodes = data.num_nodes
    positive_keys = set(_keys(csv_pairs, num_nodes).tolist())
    for split in ("val_neg", "test_neg"):
        pairs = data[split].t().numpy()
        assert (pairs[:, 0] != pairs[:, 1]).all(), split
        keys = _keys(pairs, num_nodes)
        assert not positive_keys.intersection(keys.tolist()), split
        assert len(np.unique(keys)) == len(keys), split
    val_keys = set(_keys(data.val_neg.t(), num_nodes).tolist())
    test_keys = set(_keys(data.test_neg.t(), num_nodes).tolist())
    assert not val_keys & test_keys

    splits = [_keys(data[k].t().numpy(), num_nodes) for k in ("train_pos", "val_pos", "test_pos")]
    union = np.concatenate(splits)
    assert len(np.unique(union)) == len(union)
    non_loop = csv_pairs[csv_pairs[:, 0] != csv_pairs[:, 1]]
    assert set(union.tolist()) == set(_keys(non_loop, num_nodes).tolist())

    graph_keys = set(_keys(data.edge_index.t().numpy(), num_nodes).tolist())
    assert graph_keys == set(splits[0].tolist())


@pytest.mark.parametrize("name", ["airport", "cora", "disease"])
def test_clean_lp_negatives_exclude_positives(load, hgnn_root, name):
    _check_clean_lp(load(name, "lp"), _csv_pairs(hgnn_root, LP_FOLDERS[name]))


def test_clean_lp_pubmed(load, hgnn_root):
    data = load("pubmed", "lp", "clean", "identity")
    assert data.val_pos.shape == (2, 2216)
    assert data.test_pos.shape == (2, 4432)
    # 44 327 edges minus the 3 self-loops
    assert data.train_pos.shape == (2, 44324 - 2216 - 4432)
    _check_clean_lp(data, _csv_pairs(hgnn_root, "pubmed"))


@pytest.mark.parametrize(("name", "draws"), [("airport", 10), ("cora", 40), ("disease", 40)])
def test_clean_train_negatives_exclude_positives(load, hgnn_root, name, draws):
    data = load(name, "lp")
    num_nodes = data.num_nodes
    positive_keys = np.sort(_keys(_csv_pairs(hgnn_root, LP_FOLDERS[name]), num_nodes))
    generator = torch.Generator().manual_seed(7)
    num_samples = data.train_pos.size(1)
    for _ in range(draws):
        negatives = sample_train_negatives(data, num_samples, generator=generator)
        assert negatives.shape == (2, num_samples)
        assert negatives.dtype == torch.long
        assert (negatives[0] != negatives[1]).all()
        assert not np.isin(_keys(negatives.t().numpy(), num_nodes), positive_keys).any()


def test_clean_train_negatives_deterministic(load):
    data = load("cora", "lp")
    first = sample_train_negatives(data, 500, generator=torch.Generator().manual_seed(3))
    second = sample_train_negatives(data, 500, generator=torch.Generator().manual_seed(3))
    third = sample_train_negatives(data, 500, generator=torch.Generator().manual_seed(4))
    assert torch.equal(first, second)
    assert not torch.equal(first, third)


def _reference_mask_edges(pairs, num_nodes, seed):
    """HGCN's mask_edges, written densely from its description, for comparison."""
    adjacency = np.zeros((num_nodes, num_nodes), dtype=np.int8)
    adjacency[pairs[:, 0], pairs[:, 1]] = 1
    adjacency[pairs[:, 1], pairs[:, 0]] = 1
    rng = np.random.RandomState(seed)
    positives = np.stack(np.triu(adjacency).nonzero(), axis=1)
    rng.shuffle(positives)
    negatives = np.stack(np.triu(1 - adjacency).nonzero(), axis=1).astype(np.int32)
    rng.shuffle(negatives)
    num_val, num_test = int(len(positives) * 0.05), int(len(positives) * 0.10)
    return positives, negatives, num_val, num_test, rng


def test_hgcn_lp_matches_dense_reference(load, hgnn_root):
    data = load("cora", "lp", "hgcn")
    positives, negatives, num_val, num_test, rng = _reference_mask_edges(
        _csv_pairs(hgnn_root, "cora"), 2708, seed=1234
    )
    end = num_val + num_test
    np.testing.assert_array_equal(data.val_pos.t().numpy(), positives[:num_val])
    np.testing.assert_array_equal(data.test_pos.t().numpy(), positives[num_val:end])
    np.testing.assert_array_equal(data.train_pos.t().numpy(), positives[end:])
    np.testing.assert_array_equal(data.val_neg.t().numpy(), negatives[:num_val])
    np.testing.assert_array_equal(data.test_neg.t().numpy(), negatives[num_val:end])

    # HGCN's training pool: every negative, then the val and test positives
    pool = np.concatenate([negatives, positives[:end]])
    state = np.random.RandomState()
    state.set_state(data.meta["split_rng_state"])
    for _ in range(3):
        expected = pool[rng.randint(0, len(pool), 4488)]
        drawn = sample_train_negatives(data, 4488, generator=state)
        np.testing.assert_array_equal(drawn.t().numpy(), expected)


def test_hgcn_lp_pool_includes_self_pairs(load):
    data = load("disease", "lp", "hgcn")
    num_nodes = data.num_nodes
    # every pair i <= j that is not an edge, the diagonal included
    assert len(data.hgcn_neg_perm) == num_nodes * (num_nodes + 1) // 2 - 2664
    negatives = sample_train_negatives(data, 200_000, generator=torch.Generator().manual_seed(0))
    assert (negatives[0] == negatives[1]).any()


def test_hgcn_split_seed_changes_split(hgnn_root):
    first = load_hgnn_dataset("disease", "lp", root=hgnn_root, protocol="hgcn", split_seed=1)
    second = load_hgnn_dataset("disease", "lp", root=hgnn_root, protocol="hgcn", split_seed=2)
    assert not torch.equal(first.val_pos, second.val_pos)


# ---------------------------------------------------------------------------------------------
# Errors and pickles
# ---------------------------------------------------------------------------------------------


def test_root_from_environment(hgnn_root, monkeypatch):
    monkeypatch.setenv("HYPERSST_DATA", str(hgnn_root))
    assert load_hgnn_dataset("cora", "nc").num_nodes == 2708


def test_missing_root_names_argument_and_variable(monkeypatch):
    monkeypatch.delenv("HYPERSST_DATA", raising=False)
    with pytest.raises(ValueError, match=r"root=PATH.*HYPERSST_DATA"):
        load_hgnn_dataset("cora", "nc")


def test_nonexistent_root(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_hgnn_dataset("cora", "nc", root=tmp_path / "nowhere")


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"name": "citeseer"}, ValueError, "unknown name 'citeseer'"),
        ({"task": "gc"}, ValueError, "unknown task 'gc'"),
        ({"protocol": "hyp"}, ValueError, "unknown protocol 'hyp'"),
        ({"features": "random"}, ValueError, "unknown features 'random'"),
        ({"split_seed": "1234"}, TypeError, "split_seed must be an int"),
        ({"name": "disease_nc", "task": "lp"}, ValueError, "'disease_nc' is the Disease graph"),
    ],
)
def test_invalid_arguments(hgnn_root, kwargs, error, match):
    arguments = {"name": "cora", "task": "nc", **kwargs}
    with pytest.raises(error, match=match):
        load_hgnn_dataset(arguments.pop("name"), arguments.pop("task"), root=hgnn_root, **arguments)


@pytest.mark.parametrize("features", ["auto", "real"])
@pytest.mark.parametrize(
    ("name", "task", "missing"),
    [
        ("disease", "nc", "disease_nc.feats.npz"),
        ("pubmed", "nc", "ind.pubmed.allx"),
        ("pubmed", "lp", "ind.pubmed.allx"),
    ],
)
def test_missing_features_error(hgnn_root, name, task, missing, features):
    with pytest.raises(FileNotFoundError, match=rf"{missing}.*features='identity'.*--features identity"):
        load_hgnn_dataset(name, task, root=hgnn_root, features=features)


@pytest.mark.skipif(
    os.environ.get("HYPERSST_SLOW_TESTS") != "1" and not os.environ.get("CI"),
    reason="shuffles 1.94e8 PubMed pairs (about 25 s, 0.8 GB); runs in CI, or locally with HYPERSST_SLOW_TESTS=1",
)
def test_pubmed_lp_hgcn_split(hgnn_root):
    data = load_hgnn_dataset("pubmed", "lp", root=hgnn_root, protocol="hgcn", features="identity")
    assert data.val_pos.shape == data.val_neg.shape == (2, 2216)
    assert data.test_pos.shape == data.test_neg.shape == (2, 4432)
    assert data.train_pos.shape == (2, 37679)
    num_nodes = data.num_nodes
    assert len(data.hgcn_neg_perm) == num_nodes * (num_nodes + 1) // 2 - 44327
    positive_keys = _keys(_csv_pairs(hgnn_root, "pubmed"), num_nodes)
    assert not np.isin(_keys(data.test_neg.t().numpy(), num_nodes), positive_keys).any()


def _cora_without_converted_features(hgnn_root, tmp_path):
    folder = tmp_path / "cora"
    folder.mkdir()
    for path in (hgnn_root / "cora").iterdir():
        if path.name != "cora.feats.npz":
            shutil.copy(path, folder / path.name)
    return folder


def test_pickled_features_need_allow_pickle(hgnn_root, tmp_path):
    _cora_without_converted_features(hgnn_root, tmp_path)
    with pytest.raises(FileNotFoundError, match="allow_pickle=True"):
        load_hgnn_dataset("cora", "nc", root=tmp_path)


def test_restricted_unpickler_reads_planetoid(load, hgnn_root, tmp_path):
    _cora_without_converted_features(hgnn_root, tmp_path)
    data = load_hgnn_dataset("cora", "nc", root=tmp_path, allow_pickle=True)
    assert torch.equal(data.x, load("cora", "nc").x)


class _RunsShellCommand:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        import os

        return (os.system, (f"touch {self.marker}",))


def test_restricted_unpickler_rejects_os_system(hgnn_root, tmp_path):
    folder = _cora_without_converted_features(hgnn_root, tmp_path)
    marker = tmp_path / "executed"
    (folder / "ind.cora.allx").write_bytes(pickle.dumps(_RunsShellCommand(marker), protocol=2))
    with pytest.raises(pickle.UnpicklingError, match=r"global (os|posix)\.system is not allowed"):
        load_hgnn_dataset("cora", "nc", root=tmp_path, allow_pickle=True)
    assert not marker.exists()


def test_restricted_load_rejects_builtins_eval(tmp_path):
    path = tmp_path / "evil.pkl"
    path.write_bytes(b"cbuiltins\neval\n(S'1+1'\ntR.")
    with pytest.raises(pickle.UnpicklingError, match=r"builtins\.eval is not allowed"):
        restricted_load(path)


def test_sample_train_negatives_errors(load):
    lp = load("cora", "lp")
    generator = torch.Generator().manual_seed(0)
    with pytest.raises(ValueError, match="not a link-prediction graph"):
        sample_train_negatives(load("cora", "nc"), 10, generator=generator)
    with pytest.raises(ValueError, match="num_samples must be an int >= 0"):
        sample_train_negatives(lp, -1, generator=generator)
    with pytest.raises(TypeError, match="generator must be a torch.Generator"):
        sample_train_negatives(lp, 10, generator=0)
    with pytest.raises(TypeError, match="only accepted for protocol 'hgcn'"):
        sample_train_negatives(lp, 10, generator=np.random.RandomState(0))


@pytest.mark.parametrize(
    ("name", "folder", "protocol"), [("disease", "disease_nc", "hgcn"), ("pubmed", "pubmed", "clean")]
)
def test_user_supplied_features_are_read(hgnn_root, tmp_path, name, folder, protocol):
    shutil.copytree(hgnn_root / folder, tmp_path / folder)
    num_nodes = len(np.load(hgnn_root / folder / f"{folder}.labels.npy"))
    raw = sp.random(num_nodes, 30, density=0.2, format="csr", random_state=0)
    sp.save_npz(tmp_path / folder / f"{folder}.feats.npz", raw)

    data = load_hgnn_dataset(name, "nc", root=tmp_path, protocol=protocol, features="real")
    row_sum = np.asarray(raw.sum(axis=1))
    expected = np.divide(raw.toarray(), row_sum, out=np.zeros((num_nodes, 30)), where=row_sum != 0)
    np.testing.assert_allclose(data.x.double().numpy(), expected, rtol=1e-6, atol=1e-7)
    assert data.meta["features"] == "real"
    assert data.meta["comparable"] is True


def _airport_pickle_only(hgnn_root, tmp_path):
    folder = tmp_path / "airport"
    folder.mkdir()
    shutil.copy(hgnn_root / "airport" / "airport.p", folder / "airport.p")
    return folder


@pytest.mark.parametrize("task", ["nc", "lp"])
def test_airport_pickle_matches_converted(load, hgnn_root, tmp_path, task):
    _airport_pickle_only(hgnn_root, tmp_path)
    from_pickle = load_hgnn_dataset("airport", task, root=tmp_path, allow_pickle=True)
    converted = load("airport", task)
    assert torch.equal(from_pickle.x, converted.x)
    assert torch.equal(from_pickle.edge_index, converted.edge_index)
    if task == "nc":
        assert torch.equal(from_pickle.y, converted.y)
    else:
        assert torch.equal(from_pickle.val_neg, converted.val_neg)


def test_airport_pickle_needs_allow_pickle(hgnn_root, tmp_path):
    _airport_pickle_only(hgnn_root, tmp_path)
    with pytest.raises(FileNotFoundError, match="airport.p.*allow_pickle=True"):
        load_hgnn_dataset("airport", "nc", root=tmp_path)


def test_airport_pickle_rejects_os_system(tmp_path):
    folder = tmp_path / "airport"
    folder.mkdir()
    marker = tmp_path / "executed"
    (folder / "airport.p").write_bytes(pickle.dumps(_RunsShellCommand(marker), protocol=3))
    with pytest.raises(pickle.UnpicklingError, match=r"global (os|posix)\.system is not allowed"):
        load_hgnn_dataset("airport", "nc", root=tmp_path, allow_pickle=True)
    assert not marker.exists()
