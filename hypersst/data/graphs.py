"""Loaders for the HGNN benchmark graphs: Airport, Cora, Disease and PubMed.

The loaders read the pickle-free files (``*.edges.csv``, ``*.feats.npz``/``*.feats.npy``,
``*.labels.npy``) from one folder per data set under ``root``::

    root/airport/     airport.{edges.csv,feats.npy,labels.npy}
    root/cora/        cora.{edges.csv,feats.npz,labels.npy}    (+ ind.cora.* originals)
    root/disease_nc/  disease_nc.{edges.csv,feats.npz,labels.npy}
    root/disease_lp/  disease_lp.{edges.csv,feats.npz,labels.npy}
    root/pubmed/      pubmed.{edges.csv,feats.npz,labels.npy}  (+ ind.pubmed.* originals)

Pickled originals are read only with ``allow_pickle=True``, and then only through an unpickler
that accepts the handful of numpy, scipy and builtin globals the Planetoid files use.
"""

from __future__ import annotations

import io
import os
import pickle
from pathlib import Path

import numpy as np
import scipy.sparse as sp
import torch
from torch_geometric.data import Data

from hypersst.data.splits import (
    PROTOCOLS,
    clean_edge_split,
    clean_node_split,
    hgcn_edge_split,
    hgcn_node_split,
)

__all__ = ["DATA_ENV_VAR", "load_hgnn_dataset"]

DATA_ENV_VAR = "HYPERSST_DATA"

_NAMES = ("airport", "cora", "disease", "pubmed")
_TASKS = ("nc", "lp")
_FEATURE_MODES = ("auto", "real", "identity")
_PLANETOID = ("cora", "pubmed")

# HGCN's node splits: (val_prop, test_prop) of its binary split_data routine.
_HGCN_NODE_PROPS = {"airport": (0.15, 0.15), "disease_nc": (0.10, 0.60)}
# Clean stratified node splits: (val share, test share) of all nodes.
_CLEAN_NODE_PROPS = {"airport": (0.15, 0.15), "disease_nc": (0.10, 0.60)}
# Fixed Planetoid validation size used by HyboNet (HGCN used 500).
_PLANETOID_NUM_VAL = 1000

IDENTITY_NOTE = "identity features, not comparable with published numbers"


# ---------------------------------------------------------------------------------------------
# Files
# ---------------------------------------------------------------------------------------------


def _resolve_root(root: str | os.PathLike | None) -> Path:
    if root is None:
        root = os.environ.get(DATA_ENV_VAR)
        if not root:
            raise ValueError(
                "load_hgnn_dataset: no data folder given; pass root=PATH or set the environment "
                f"variable {DATA_ENV_VAR} to the folder that holds airport/, cora/, disease_nc/, "
                "disease_lp/ and pubmed/"
            )
    path = Path(root)
    if not path.is_dir():
        raise FileNotFoundError(f"load_hgnn_dataset: data folder {str(path)!r} does not exist")
    return path


def _require(path: Path) -> Path:
    if not path.is_file():
        raise FileNotFoundError(f"load_hgnn_dataset: required file {str(path)!r} not found")
    return path


def _read_edges(path: Path, *, first_appearance_ids: bool) -> np.ndarray:
    """Read an "i,j" CSV as an ``(m, 2)`` int64 array.

    With ``first_appearance_ids`` the raw ids are renumbered 0, 1, ... in order of first
    appearance when the file is read line by line, left to right (the Disease convention).
    """
    edges = np.loadtxt(_require(path), delimiter=",", dtype=np.int64, ndmin=2)
    if first_appearance_ids:
        flat = edges.reshape(-1)
        unique_ids, first_seen, inverse = np.unique(flat, return_index=True, return_inverse=True)
        new_id = np.empty(len(unique_ids), dtype=np.int64)
        new_id[np.argsort(first_seen)] = np.arange(len(unique_ids))
        edges = new_id[inverse].reshape(-1, 2)
    return edges


# Globals the Planetoid ind.* pickles reference (Python 2 names), mapped to current objects.
_PLANETOID_GLOBALS = {
    ("numpy", "dtype"): np.dtype,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy.core.multiarray", "_reconstruct"): np.ndarray((0,)).__reduce__()[0],
    ("scipy.sparse.csr", "csr_matrix"): sp.csr_matrix,
    ("collections", "defaultdict"): __import__("collections").defaultdict,
    ("__builtin__", "list"): list,
}


class _RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that resolves only the globals in ``allowed`` and rejects every other one."""

    def __init__(self, file, allowed: dict, **kwargs):
        super().__init__(file, **kwargs)
        self._allowed = allowed

    def find_class(self, module: str, name: str):
        try:
            return self._allowed[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(
                f"restricted unpickler: global {module}.{name} is not allowed in a data file"
            ) from None


def restricted_load(path: str | os.PathLike, allowed: dict | None = None):
    """Unpickle ``path`` allowing only the globals in ``allowed`` (default: the Planetoid set).

    Args:
        path: pickle file (Python 2 pickles are read with ``encoding="latin1"``).
        allowed: mapping ``(module, name) -> object`` of the permitted globals.

    Returns:
        The unpickled object.

    Raises:
        pickle.UnpicklingError: if the file references any other global.
    """
    raw = Path(path).read_bytes()
    unpickler = _RestrictedUnpickler(
        io.BytesIO(raw), _PLANETOID_GLOBALS if allowed is None else allowed, encoding="latin1"
    )
    return unpickler.load()


def _planetoid_features_from_pickles(folder: Path, name: str) -> sp.csr_matrix:
    """Assemble vstack(allx, tx) with the test rows moved to their ``test.index`` ids."""
    allx = restricted_load(_require(folder / f"ind.{name}.allx"))
    tx = restricted_load(_require(folder / f"ind.{name}.tx"))
    test_ids = np.loadtxt(_require(folder / f"ind.{name}.test.index"), dtype=np.int64, ndmin=1)
    stacked = sp.vstack([sp.csr_matrix(allx), sp.csr_matrix(tx)]).tocsr()
    source_row = np.arange(stacked.shape[0])
    source_row[test_ids] = np.sort(test_ids)
    return stacked[source_row]


class _InertState:
    """Stand-in for a pickled networkx object: receives its ``__dict__`` and runs no code."""


# Globals of HGCN's airport.p (a pickled networkx 2.x Graph). The networkx classes are replaced
# by an inert stand-in, so loading runs no networkx code.
_AIRPORT_GLOBALS = {
    ("builtins", "dict"): dict,
    ("networkx.classes.graph", "Graph"): _InertState,
    ("networkx.classes.reportviews", "NodeView"): _InertState,
}


def _read_airport_pickle(folder: Path, *, allow_pickle: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return ``(labels, edges, raw features)`` of Airport from ``airport.p``.

    Rows follow the graph's node insertion order. The NC labels bin feature column 4 at 1, 8/7
    and 9/7 (``numpy.digitize``), shifted so that the smallest bin is 0, as HGCN does.
    """
    source = folder / "airport.p"
    if not allow_pickle:
        raise FileNotFoundError(
            f"load_hgnn_dataset: {str(folder / 'airport.edges.csv')!r} not found and "
            f"{str(source)!r} is a pickle; pass allow_pickle=True to read it with a restricted "
            "unpickler, or convert it to the pickle-free airport.* files first"
        )
    graph = restricted_load(_require(source), _AIRPORT_GLOBALS)
    state = getattr(graph, "__dict__", {})
    if not isinstance(graph, _InertState) or "_node" not in state or "_adj" not in state:
        raise ValueError(f"load_hgnn_dataset: {str(source)!r} does not contain a networkx Graph")

    node_ids = list(state["_node"])
    row_of = {node: row for row, node in enumerate(node_ids)}
    features = np.array([state["_node"][node]["feat"] for node in node_ids], dtype=np.float64)
    edges = np.array(
        [(row_of[u], row_of[v]) for u, neighbours in state["_adj"].items() for v in neighbours],
        dtype=np.int64,
    ).reshape(-1, 2)
    bins = np.digitize(features[:, 4], [1.0, 8.0 / 7.0, 9.0 / 7.0])
    return (bins - bins.min()).astype(np.int64), edges, features


def _missing_features_error(name: str, missing: Path, extra: str = "") -> FileNotFoundError:
    return FileNotFoundError(
        f"load_hgnn_dataset: the features of {name!r} are missing: {str(missing)!r} not found{extra}. "
        "Place the original file there, or run with features='identity' (CLI: --features identity); "
        "identity features are not comparable with published numbers."
    )


def _read_real_features(folder: Path, dataset: str, *, allow_pickle: bool) -> sp.csr_matrix:
    """Return the raw feature matrix of ``dataset`` as float64 CSR."""
    if dataset == "airport":
        # load_hgnn_dataset reads airport.p instead when the converted files are missing
        return sp.csr_matrix(np.load(_require(folder / "airport.feats.npy")))

    converted = folder / f"{dataset}.feats.npz"
    if converted.is_file():
        return sp.csr_matrix(sp.load_npz(converted), dtype=np.float64)
    if dataset not in _PLANETOID:
        raise _missing_features_error(dataset, converted)

    allx = folder / f"ind.{dataset}.allx"
    if not allx.is_file():
        raise _missing_features_error(dataset, allx, extra=f" (nor the converted {str(converted)!r})")
    if not allow_pickle:
        raise FileNotFoundError(
            f"load_hgnn_dataset: {str(converted)!r} not found and {str(allx)!r} is a pickle; pass "
            "allow_pickle=True to read it with a restricted unpickler, or convert it to "
            f"{converted.name} first"
        )
    return sp.csr_matrix(_planetoid_features_from_pickles(folder, dataset), dtype=np.float64)


# ---------------------------------------------------------------------------------------------
# Preprocessing
# ---------------------------------------------------------------------------------------------


def _row_normalize(features: sp.csr_matrix) -> sp.csr_matrix:
    """Return ``diag(1 / rowsum) @ features``, leaving rows that sum to zero at zero."""
    row_sum = np.asarray(features.sum(axis=1)).reshape(-1)
    inverse = np.zeros_like(row_sum)
    # a zero row sum would give 1/0, which HGCN replaces by 0, so the row stays zero
    nonzero = row_sum != 0
    inverse[nonzero] = 1.0 / row_sum[nonzero]
    return sp.diags(inverse) @ features


def _symmetric_adjacency(pairs: np.ndarray, num_nodes: int, *, self_loop_weight: int) -> sp.csr_matrix:
    """Symmetric adjacency of canonical pairs (i <= j), as HGCN builds it before its degree count.

    HGCN's NC adjacency comes from networkx, where a self-loop counts 1. Its LP training
    adjacency is A_train + A_train^T, where a self-loop counts 2.
    """
    ones = np.ones(len(pairs))
    upper = sp.csr_matrix((ones, (pairs[:, 0], pairs[:, 1])), shape=(num_nodes, num_nodes))
    adjacency = upper + upper.T
    if self_loop_weight == 1:
        adjacency = adjacency - sp.diags(upper.diagonal())
    return sp.csr_matrix(adjacency)


def _augment_with_degree(features: np.ndarray, adjacency: sp.csr_matrix) -> np.ndarray:
    """Append a one-hot of min(degree, 5) (6 columns) and a constant 1 column."""
    degree = np.asarray(adjacency.sum(axis=0)).reshape(-1).astype(np.int64)
    degree_onehot = np.eye(6)[np.minimum(degree, 5)]
    return np.hstack([features, degree_onehot, np.ones((len(features), 1))])


def _identity_features(num_nodes: int) -> torch.Tensor:
    eye = torch.arange(num_nodes).repeat(2, 1)
    return torch.sparse_coo_tensor(
        eye, torch.ones(num_nodes), (num_nodes, num_nodes), check_invariants=True
    ).coalesce()


def _edge_index(pairs: np.ndarray) -> torch.Tensor:
    """Both directions of the non-self-loop pairs, as a ``(2, 2m)`` LongTensor."""
    pairs = pairs[pairs[:, 0] != pairs[:, 1]]
    both = np.concatenate([pairs, pairs[:, ::-1]])
    both = both[np.lexsort((both[:, 1], both[:, 0]))]
    return torch.from_numpy(np.ascontiguousarray(both.T)).long()


def _pairs_tensor(pairs: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(np.asarray(pairs, dtype=np.int64).T))


# ---------------------------------------------------------------------------------------------
# Public loader
# ---------------------------------------------------------------------------------------------


def _check_arguments(name, task, protocol, features, split_seed) -> str:
    if name in ("disease_nc", "disease_lp"):
        if name != f"disease_{task}":
            raise ValueError(
                f"load_hgnn_dataset: {name!r} is the Disease graph for task {name[-2:]!r}, not "
                f"{task!r}; pass name='disease' and the task"
            )
        name = "disease"
    if name not in _NAMES:
        raise ValueError(f"load_hgnn_dataset: unknown name {name!r}; expected one of {_NAMES}")
    if task not in _TASKS:
        raise ValueError(f"load_hgnn_dataset: unknown task {task!r}; expected 'nc' or 'lp'")
    if protocol not in PROTOCOLS:
        raise ValueError(f"load_hgnn_dataset: unknown protocol {protocol!r}; expected one of {PROTOCOLS}")
    if features not in _FEATURE_MODES:
        raise ValueError(
            f"load_hgnn_dataset: unknown features {features!r}; expected one of {_FEATURE_MODES}"
        )
    if not isinstance(split_seed, (int, np.integer)) or isinstance(split_seed, bool):
        raise TypeError(f"load_hgnn_dataset: split_seed must be an int, got {type(split_seed).__name__}")
    return f"disease_{task}" if name == "disease" else name


def load_hgnn_dataset(
    name: str,
    task: str,
    *,
    root: str | os.PathLike | None = None,
    protocol: str = "clean",
    split_seed: int = 1234,
    features: str = "auto",
    allow_pickle: bool = False,
) -> Data:
    """Load an HGNN benchmark graph with its split, preprocessed as HGCN and HyboNet do.

    Preprocessing: features are row-normalised (except Disease LP), rows summing to 0 stay 0.
    Airport keeps feature columns 0-3 for NC and all 5 for LP, then gets a one-hot of
    min(degree, 5) on the training adjacency and a constant 1 column (11 and 12 features).

    Splits (see :mod:`hypersst.data.splits`):

    * ``protocol="hgcn"`` reproduces HGCN/HyboNet. Cora/PubMed NC train on the first 140/60
      nodes, validate on the next 1000 and test on the ``test.index`` nodes. Airport and Disease
      NC use HGCN's binary ``split_data``, whose sets overlap on 4-class Airport. LP uses HGCN's
      ``mask_edges`` (5% validation, 10% test, negatives including self-pairs). For PubMed LP
      the exact shuffle covers 1.94e8 pairs, which takes about 25 s and 777 MB.
    * ``protocol="clean"`` keeps the fixed Cora/PubMed NC split (already disjoint), uses disjoint
      stratified splits for Airport (70/15/15) and Disease (30/10/60), and LP splits without
      self-loop positives whose negatives are never a self-pair or a positive of any split.

    Args:
        name: ``"airport"``, ``"cora"``, ``"disease"`` or ``"pubmed"`` (``"disease_nc"`` and
            ``"disease_lp"`` are accepted with the matching task).
        task: ``"nc"`` (node classification) or ``"lp"`` (link prediction).
        root: folder holding one sub-folder per data set (default: ``$HYPERSST_DATA``).
        protocol: ``"clean"`` (default) or ``"hgcn"``.
        split_seed: seed of the split (default: 1234, the HGCN/HyboNet value).
        features: ``"auto"`` (default) and ``"real"`` read the real features, and both raise
            ``FileNotFoundError`` when they are missing. ``"identity"`` uses a sparse N x N
            identity and marks the result as not comparable with published numbers.
        allow_pickle: permit reading pickled originals (through a restricted unpickler) when a
            converted file is missing (default: False).

    Returns:
        A ``Data`` with ``x`` (float32, ``(N, F)``; sparse COO for identity features),
        ``edge_index`` (both directions, no self-loops; the LP training graph for LP), ``meta``
        (dict with name, task, protocol, split_seed, features, comparable, note) and ``num_nodes``.
        NC adds ``y``, ``train_idx``, ``val_idx``, ``test_idx`` and ``num_classes``. LP adds
        ``train_pos``, ``val_pos``, ``val_neg``, ``test_pos``, ``test_neg`` (``(2, n)``),
        ``all_pos`` (every positive) and, for ``"hgcn"``, ``hgcn_neg_perm`` and
        ``meta["split_rng_state"]`` for :func:`~hypersst.data.sample_train_negatives`.

    Raises:
        ValueError: on an unknown name, task, protocol or feature mode, or without a root.
        TypeError: if ``split_seed`` is not an int.
        FileNotFoundError: if the folder, a required file or the real features are missing.
    """
    dataset = _check_arguments(name, task, protocol, features, split_seed)
    folder = _resolve_root(root) / dataset

    if dataset == "airport" and not (folder / "airport.edges.csv").is_file():
        labels, edges, airport_features = _read_airport_pickle(folder, allow_pickle=allow_pickle)
    else:
        labels = np.load(_require(folder / f"{dataset}.labels.npy")).astype(np.int64)
        edges = _read_edges(
            folder / f"{dataset}.edges.csv", first_appearance_ids=dataset.startswith("disease")
        )
        airport_features = None
    num_nodes = len(labels)
    if edges.size and edges.max() >= num_nodes:
        raise ValueError(
            f"load_hgnn_dataset: {dataset}.edges.csv names node {edges.max()} but "
            f"{dataset}.labels.npy has only {num_nodes} rows"
        )
    pairs = np.unique(np.sort(edges, axis=1), axis=0)

    raw_features = None
    if features != "identity" and airport_features is not None:
        raw_features = sp.csr_matrix(airport_features)
    elif features != "identity":
        raw_features = _read_real_features(folder, dataset, allow_pickle=allow_pickle)

    if task == "nc":
        data = _build_nc(folder, dataset, labels, pairs, protocol, split_seed)
        train_adjacency = _symmetric_adjacency(pairs, num_nodes, self_loop_weight=1)
    else:
        data = _build_lp(dataset, pairs, num_nodes, protocol, split_seed)
        train_adjacency = _symmetric_adjacency(data.train_pos.t().numpy(), num_nodes, self_loop_weight=2)

    if raw_features is None:
        data.x = _identity_features(num_nodes)
    else:
        data.x = _preprocess_features(dataset, task, raw_features, train_adjacency)

    real = raw_features is not None
    comparable, note = _comparability(dataset, task, protocol, real)
    data.meta = {
        "name": dataset,
        "task": task,
        "protocol": protocol,
        "split_seed": int(split_seed),
        "features": "real" if real else "identity",
        "comparable": comparable,
        "note": note,
        **data.meta,
    }
    return data


def _preprocess_features(dataset, task, raw_features, train_adjacency) -> torch.Tensor:
    matrix = raw_features
    if dataset == "airport" and task == "nc":
        matrix = matrix[:, :4]
    if dataset != "disease_lp":
        matrix = _row_normalize(matrix)
    dense = matrix.toarray()
    if dataset == "airport":
        dense = _augment_with_degree(dense, train_adjacency)
    return torch.from_numpy(dense).float()


def _comparability(dataset, task, protocol, real) -> tuple[bool, str]:
    if not real:
        return False, IDENTITY_NOTE
    if protocol == "hgcn":
        return True, "HGCN/HyboNet split (protocol 'hgcn'), comparable with published numbers"
    if task == "nc" and dataset in _PLANETOID:
        return True, "fixed Planetoid split as in HyboNet, comparable with published numbers"
    return False, "protocol 'clean' split, differs from the published HGCN/HyboNet split"


def _build_nc(folder, dataset, labels, pairs, protocol, split_seed) -> Data:
    if dataset in _PLANETOID:
        # the fixed split, identical under both protocols
        num_train = {"cora": 140, "pubmed": 60}[dataset]
        train_idx = np.arange(num_train)
        val_idx = np.arange(num_train, num_train + _PLANETOID_NUM_VAL)
        test_file = _require(folder / f"ind.{dataset}.test.index")
        test_idx = np.sort(np.loadtxt(test_file, dtype=np.int64, ndmin=1))
    elif protocol == "hgcn":
        train_idx, val_idx, test_idx = hgcn_node_split(labels, *_HGCN_NODE_PROPS[dataset], split_seed)
    else:
        train_idx, val_idx, test_idx = clean_node_split(labels, *_CLEAN_NODE_PROPS[dataset], split_seed)

    data = Data(
        y=torch.from_numpy(labels),
        edge_index=_edge_index(pairs),
        train_idx=torch.from_numpy(train_idx),
        val_idx=torch.from_numpy(val_idx),
        test_idx=torch.from_numpy(test_idx),
        num_nodes=len(labels),
    )
    data.num_classes = int(labels.max()) + 1
    data.meta = {}
    return data


def _build_lp(dataset, pairs, num_nodes, protocol, split_seed) -> Data:
    if protocol == "hgcn":
        split = hgcn_edge_split(pairs, num_nodes, seed=split_seed)
    else:
        split = clean_edge_split(pairs, num_nodes, seed=split_seed)
    data = Data(edge_index=_edge_index(split["train_pos"]), num_nodes=num_nodes)
    for key in ("train_pos", "val_pos", "val_neg", "test_pos", "test_neg", "all_pos"):
        data[key] = _pairs_tensor(split[key])
    data.meta = {}
    if protocol == "hgcn":
        data.hgcn_neg_perm = torch.from_numpy(split["neg_perm"])
        data.meta["split_rng_state"] = split["rng_state"]
    return data
