"""Node and edge splits for the HGNN benchmark, under two protocols.

``"hgcn"`` reproduces the splits of HGCN (Chami et al., 2019) and HyboNet (Chen et al., 2022)
draw for draw, with a legacy :class:`numpy.random.RandomState` seeded with ``split_seed``:

* the node split of HGCN's binary ``split_data`` routine, which on labels with more than two
  classes puts nodes of classes 2, 3, ... into both of its lists, so the splits overlap;
* the edge split of HGCN's ``mask_edges``: the negatives are every non-adjacent pair (i, j) with
  i <= j, self-pairs included, and the training negatives are drawn with replacement from all of
  them plus the validation and test positives.

``"clean"`` uses disjoint stratified node splits, and edge splits whose negatives never contain a
self-pair or a positive edge of any split.

Every undirected pair (i, j) with i <= j is stored with ``i`` in row 0 and ``j`` in row 1.
"""

from __future__ import annotations

import numpy as np
import torch
from sklearn.model_selection import train_test_split
from torch_geometric.data import Data

__all__ = [
    "PROTOCOLS",
    "clean_edge_split",
    "clean_node_split",
    "hgcn_edge_split",
    "hgcn_node_split",
    "sample_train_negatives",
]

PROTOCOLS = ("clean", "hgcn")

# The exact HGCN shuffle stores one int32 permutation entry (4 bytes) per non-adjacent pair.
# Graphs with more pairs than this (1.2 GB of permutation) are rejected. PubMed has 1.94e8 pairs,
# which take 777 MB and about 25 s to shuffle on one CPU core.
_MAX_HGCN_NEGATIVES = 300_000_000


# ---------------------------------------------------------------------------------------------
# Node splits
# ---------------------------------------------------------------------------------------------


def hgcn_node_split(
    labels: np.ndarray, val_prop: float, test_prop: float, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Split nodes as HGCN's binary ``split_data`` does, overlap included.

    The "positive" list contains the nodes with label != 0 and the "negative" list the nodes
    with label != 1. Both lists are shuffled (positives first) by one ``RandomState(seed)``, and the
    validation and test sets take ``round(prop * min(#pos, #neg))`` nodes from the front of each
    list (Python's ``round``, half to even). With more than two classes a node of class >= 2 is
    in both lists, so the returned index arrays may overlap and contain duplicates.

    Args:
        labels: integer class labels, shape ``(N,)``.
        val_prop: validation share of the smaller list.
        test_prop: test share of the smaller list.
        seed: seed of the legacy RandomState.

    Returns:
        ``(train_idx, val_idx, test_idx)`` as int64 arrays, each positives first.
    """
    labels = np.asarray(labels)
    rng = np.random.RandomState(seed)
    positives = np.flatnonzero(labels != 0)
    negatives = np.flatnonzero(labels != 1)
    rng.shuffle(positives)
    rng.shuffle(negatives)

    per_list = min(len(positives), len(negatives))
    num_val = round(val_prop * per_list)
    num_test = round(test_prop * per_list)
    end_test = num_val + num_test

    def take(start: int, stop: int | None) -> np.ndarray:
        return np.concatenate([positives[start:stop], negatives[start:stop]]).astype(np.int64)

    return take(end_test, None), take(0, num_val), take(num_val, end_test)


def clean_node_split(
    labels: np.ndarray, val_prop: float, test_prop: float, seed: int, *, stratify: bool = True
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Split nodes into disjoint train, validation and test sets, stratified by label.

    Args:
        labels: integer class labels, shape ``(N,)``.
        val_prop: share of all nodes that goes to validation.
        test_prop: share of all nodes that goes to test.
        seed: seed passed to :func:`sklearn.model_selection.train_test_split`.
        stratify: keep the class proportions in every set (default: True); needs at least
            two nodes of each class in each stage.

    Returns:
        ``(train_idx, val_idx, test_idx)`` as sorted int64 arrays.
    """
    labels = np.asarray(labels)
    nodes = np.arange(len(labels))
    holdout = val_prop + test_prop
    train_idx, rest_idx = train_test_split(
        nodes, test_size=holdout, stratify=labels if stratify else None, random_state=seed
    )
    val_idx, test_idx = train_test_split(
        rest_idx,
        test_size=test_prop / holdout,
        stratify=labels[rest_idx] if stratify else None,
        random_state=seed,
    )
    return tuple(np.sort(part).astype(np.int64) for part in (train_idx, val_idx, test_idx))


# ---------------------------------------------------------------------------------------------
# Edge splits
# ---------------------------------------------------------------------------------------------


def _canonical_pairs(edges: np.ndarray) -> np.ndarray:
    """Return the unique undirected pairs of an ``(m, 2)`` edge array, (i <= j), row-major sorted."""
    edges = np.asarray(edges, dtype=np.int64).reshape(-1, 2)
    pairs = np.sort(edges, axis=1)
    return np.unique(pairs, axis=0)


def _pair_keys(pairs: np.ndarray | torch.Tensor, num_nodes: int):
    """Encode canonical pairs ``(m, 2)`` as ``i * num_nodes + j``; works for numpy and torch."""
    return pairs[:, 0] * num_nodes + pairs[:, 1]


def _split_counts(num_positives: int, val_prop: float, test_prop: float) -> tuple[int, int]:
    # HGCN truncates with int(); the same rule is used for both protocols.
    return int(num_positives * val_prop), int(num_positives * test_prop)


class _UpperNonEdges:
    """Index the non-adjacent pairs (i, j), i <= j, in row-major order without enumerating them.

    The k-th such pair of row ``i`` is column ``j = i + k + t``, where ``t`` counts the positives
    ``p`` of row ``i`` that lie before it, which are those with ``p - i - rank(p) <= k``
    (``rank`` is the position of ``p`` within its row). That quantity never decreases along a row,
    so one ``searchsorted`` on ``row * (N + 1) + (p - i - rank)`` finds ``t`` for many queries.
    """

    def __init__(self, positives: np.ndarray, num_nodes: int):
        pairs = _canonical_pairs(positives)
        rows, cols = pairs[:, 0], pairs[:, 1]
        n = num_nodes
        per_row = np.bincount(rows, minlength=n)
        row_start = np.concatenate([[0], np.cumsum(per_row)[:-1]])
        rank_in_row = np.arange(len(rows)) - row_start[rows]

        self.num_nodes = n
        free_per_row = (n - np.arange(n)) - per_row
        self.row_end = np.cumsum(free_per_row)
        self.num_pairs = int(self.row_end[-1])
        self.row_begin = self.row_end - free_per_row
        self.row_start = row_start
        self.gap_keys = rows * (n + 1) + (cols - rows - rank_in_row)

    def decode(self, ranks: np.ndarray) -> np.ndarray:
        """Return the pairs ``(len(ranks), 2)`` at the given row-major ranks."""
        ranks = np.asarray(ranks, dtype=np.int64)
        rows = np.searchsorted(self.row_end, ranks, side="right")
        offset = ranks - self.row_begin[rows]
        before = np.searchsorted(self.gap_keys, rows * (self.num_nodes + 1) + offset, side="right")
        cols = rows + offset + (before - self.row_start[rows])
        return np.stack([rows, cols], axis=1)


def hgcn_edge_split(
    edges: np.ndarray, num_nodes: int, *, val_prop: float = 0.05, test_prop: float = 0.10, seed: int = 1234
) -> dict:
    """Split edges as HGCN's ``mask_edges`` does, with the same RandomState draws.

    The positives (self-loops included) are enumerated row-major with i <= j and shuffled, then
    the non-adjacent pairs (i, j), i <= j (self-pairs included) are enumerated row-major and
    shuffled by the same generator. Validation and test take ``int(prop * m)`` positives and as
    many negatives from the front of each shuffled list. Instead of materialising the ``(M, 2)``
    negatives it shuffles an int32 index permutation, which draws the same random sequence, and
    decodes ranks to pairs on demand: 4 bytes per pair instead of HGCN's Python tuples.

    Args:
        edges: undirected edges, shape ``(m, 2)``, any orientation, duplicates allowed.
        num_nodes: number of nodes ``N``.
        val_prop: validation share of the positives (default: 0.05).
        test_prop: test share of the positives (default: 0.10).
        seed: seed of the legacy RandomState (default: 1234).

    Returns:
        A dict with ``train_pos``, ``val_pos``, ``val_neg``, ``test_pos``, ``test_neg`` (int64
        arrays ``(n, 2)``), ``neg_perm`` (the shuffled ranks of all negatives, int32 ``(M,)``),
        ``all_pos`` (every positive, ``(m, 2)``) and ``rng_state``, the generator state after the
        split, from which HGCN continues drawing its training negatives.

    Raises:
        NotImplementedError: if there are more than 3e8 non-adjacent pairs.
    """
    positives = _canonical_pairs(edges)
    index = _UpperNonEdges(positives, num_nodes)
    if index.num_pairs > _MAX_HGCN_NEGATIVES:
        raise NotImplementedError(
            f"protocol='hgcn' edge split: {index.num_pairs} non-adjacent pairs exceed the limit of "
            f"{_MAX_HGCN_NEGATIVES}, because the exact HGCN shuffle needs one 4-byte index per "
            "pair; use protocol='clean', which samples negatives without enumerating them"
        )

    rng = np.random.RandomState(seed)
    rng.shuffle(positives)
    neg_perm = np.arange(index.num_pairs, dtype=np.int32)
    rng.shuffle(neg_perm)

    num_val, num_test = _split_counts(len(positives), val_prop, test_prop)
    end_test = num_val + num_test
    return {
        "val_pos": positives[:num_val],
        "test_pos": positives[num_val:end_test],
        "train_pos": positives[end_test:],
        "val_neg": index.decode(neg_perm[:num_val]),
        "test_neg": index.decode(neg_perm[num_val:end_test]),
        "neg_perm": neg_perm,
        "all_pos": np.unique(positives, axis=0),
        "rng_state": rng.get_state(),
    }


def _sample_non_edges(
    draw, num_samples: int, num_nodes: int, exclude_keys: np.ndarray, *, unique: bool
) -> np.ndarray:
    """Rejection-sample canonical pairs i < j whose key is not in the sorted ``exclude_keys``.

    ``draw(size)`` returns an ``(size, 2)`` int64 array of node ids. Draws with i == j or with an
    excluded key are dropped and the rest topped up until ``num_samples`` are found.
    """
    max_pairs = num_nodes * (num_nodes - 1) // 2 - len(exclude_keys)
    if (unique and num_samples > max_pairs) or (num_samples > 0 and max_pairs <= 0):
        raise ValueError(
            f"cannot sample {num_samples} negative pairs: the graph has only {max_pairs} "
            "non-adjacent pairs of distinct nodes"
        )
    found = np.empty((0, 2), dtype=np.int64)
    while len(found) < num_samples:
        batch = draw(2 * (num_samples - len(found)) + 16)
        batch = np.sort(batch, axis=1)
        keys = _pair_keys(batch, num_nodes)
        position = np.searchsorted(exclude_keys, keys).clip(max=max(len(exclude_keys) - 1, 0))
        excluded = exclude_keys[position] == keys if len(exclude_keys) else np.zeros(len(keys), bool)
        batch = batch[(batch[:, 0] != batch[:, 1]) & ~excluded]
        found = np.concatenate([found, batch])
        if unique:
            # keep the first occurrence of every pair, in draw order
            _, first = np.unique(_pair_keys(found, num_nodes), return_index=True)
            found = found[np.sort(first)]
    return found[:num_samples]


def clean_edge_split(
    edges: np.ndarray, num_nodes: int, *, val_prop: float = 0.05, test_prop: float = 0.10, seed: int = 1234
) -> dict:
    """Split edges with negatives that are never a self-pair or a positive of any split.

    Self-loops are dropped from the positives, because a self-pair scores trivially. The positives
    are shuffled with ``numpy.random.default_rng(seed)``; validation and test take ``int(prop * m)``
    of them, and as many distinct negative pairs, disjoint between validation and test.

    Args:
        edges: undirected edges, shape ``(m, 2)``, any orientation, duplicates allowed.
        num_nodes: number of nodes ``N``.
        val_prop: validation share of the positives (default: 0.05).
        test_prop: test share of the positives (default: 0.10).
        seed: seed of the numpy Generator (default: 1234).

    Returns:
        A dict with ``train_pos``, ``val_pos``, ``val_neg``, ``test_pos``, ``test_neg`` and
        ``all_pos`` (every positive), each an int64 array ``(n, 2)`` with i < j.
    """
    positives = _canonical_pairs(edges)
    positives = positives[positives[:, 0] != positives[:, 1]]
    rng = np.random.default_rng(seed)
    shuffled = positives[rng.permutation(len(positives))]

    num_val, num_test = _split_counts(len(shuffled), val_prop, test_prop)
    end_test = num_val + num_test
    exclude = np.sort(_pair_keys(positives, num_nodes))
    negatives = _sample_non_edges(
        lambda size: rng.integers(0, num_nodes, size=(size, 2)),
        end_test,
        num_nodes,
        exclude,
        unique=True,
    )
    return {
        "val_pos": shuffled[:num_val],
        "test_pos": shuffled[num_val:end_test],
        "train_pos": shuffled[end_test:],
        "val_neg": negatives[:num_val],
        "test_neg": negatives[num_val:end_test],
        "all_pos": positives,
    }


# ---------------------------------------------------------------------------------------------
# Training negatives
# ---------------------------------------------------------------------------------------------


def sample_train_negatives(
    data: Data, num_samples: int, *, generator: torch.Generator | np.random.RandomState
) -> torch.Tensor:
    """Draw training negatives for an LP ``Data`` object built by this package.

    Under ``protocol="clean"`` (and for synthetic graphs) the pairs are drawn uniformly with
    replacement from the pairs (i, j), i < j, that are neither a self-pair nor a positive edge of
    the training, validation or test split; rejected draws are topped up.

    Under ``protocol="hgcn"`` the pairs are drawn uniformly with replacement from HGCN's training
    pool: every non-adjacent pair (i, j), i <= j, self-pairs included, in HGCN's shuffled order,
    followed by the validation and test positives. Passing a ``numpy.random.RandomState`` set to
    ``data.meta["split_rng_state"]`` reproduces HGCN's per-epoch ``randint`` draws exactly.

    Args:
        data: an LP ``Data`` from :func:`~hypersst.data.load_hgnn_dataset` or
            :func:`~hypersst.data.make_synthetic_hierarchy`.
        num_samples: number of pairs to draw, usually ``data.train_pos.size(1)``.
        generator: a ``torch.Generator``, or (protocol ``"hgcn"`` only) a legacy
            ``numpy.random.RandomState``.

    Returns:
        LongTensor of shape ``(2, num_samples)``.

    Raises:
        TypeError: if ``generator`` is of another kind.
        ValueError: if ``data`` is not an LP graph or ``num_samples`` is negative.
    """
    meta = getattr(data, "meta", None) or {}
    if meta.get("task") != "lp" or not hasattr(data, "all_pos"):
        raise ValueError(
            "sample_train_negatives: data is not a link-prediction graph from hypersst.data "
            f"(meta task={meta.get('task')!r}); load it with task='lp'"
        )
    if not isinstance(num_samples, (int, np.integer)) or num_samples < 0:
        raise ValueError(f"sample_train_negatives: num_samples must be an int >= 0, got {num_samples!r}")
    num_samples = int(num_samples)
    if not isinstance(generator, (torch.Generator, np.random.RandomState)):
        raise TypeError(
            "sample_train_negatives: generator must be a torch.Generator (or, for protocol 'hgcn', "
            f"a numpy.random.RandomState), got {type(generator).__name__}"
        )

    num_nodes = int(data.num_nodes)
    all_pos = data.all_pos.t().numpy()
    if meta.get("protocol") == "hgcn":
        pairs = _sample_hgcn_pool(data, all_pos, num_nodes, num_samples, generator)
    else:
        if isinstance(generator, np.random.RandomState):
            raise TypeError(
                "sample_train_negatives: a numpy RandomState is only accepted for protocol 'hgcn'; "
                "pass a torch.Generator"
            )

        def draw(size: int) -> np.ndarray:
            return torch.randint(0, num_nodes, (size, 2), generator=generator).numpy()

        exclude = np.sort(_pair_keys(all_pos, num_nodes))
        pairs = _sample_non_edges(draw, num_samples, num_nodes, exclude, unique=False)
    return torch.from_numpy(np.ascontiguousarray(pairs.T)).long()


def _sample_hgcn_pool(data, all_pos, num_nodes, num_samples, generator) -> np.ndarray:
    neg_perm = data.hgcn_neg_perm.numpy()
    held_out = np.concatenate([data.val_pos.t().numpy(), data.test_pos.t().numpy()])
    pool_size = len(neg_perm) + len(held_out)
    if isinstance(generator, np.random.RandomState):
        picks = generator.randint(0, pool_size, num_samples)
    else:
        picks = torch.randint(0, pool_size, (num_samples,), generator=generator).numpy()
    picks = np.asarray(picks, dtype=np.int64)

    pairs = np.empty((num_samples, 2), dtype=np.int64)
    from_negatives = picks < len(neg_perm)
    index = _UpperNonEdges(all_pos, num_nodes)
    pairs[from_negatives] = index.decode(neg_perm[picks[from_negatives]])
    pairs[~from_negatives] = held_out[picks[~from_negatives] - len(neg_perm)]
    return pairs
