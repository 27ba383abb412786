"""A synthetic hierarchical graph with epidemic labels, for machines without the real data."""

from __future__ import annotations

import numpy as np
import torch
from torch_geometric.data import Data

from hypersst.data.graphs import _edge_index, _pairs_tensor
from hypersst.data.splits import clean_edge_split, clean_node_split

__all__ = ["make_synthetic_hierarchy"]

_NUM_PROCESS_FEATURES = 3


def _check_arguments(num_nodes, task, feature_dim, transmission, noise, trait_step, val_prop, test_prop) -> None:
    if not isinstance(num_nodes, (int, np.integer)) or isinstance(num_nodes, bool):
        raise TypeError(f"make_synthetic_hierarchy: num_nodes must be an int, got {type(num_nodes).__name__}")
    if num_nodes < 20:
        raise ValueError(f"make_synthetic_hierarchy: num_nodes must be >= 20, got {num_nodes}")
    if task not in ("nc", "lp"):
        raise ValueError(f"make_synthetic_hierarchy: unknown task {task!r}; expected 'nc' or 'lp'")
    if not isinstance(feature_dim, (int, np.integer)) or feature_dim < _NUM_PROCESS_FEATURES:
        raise ValueError(
            f"make_synthetic_hierarchy: feature_dim must be an int >= {_NUM_PROCESS_FEATURES}, "
            f"got {feature_dim!r}"
        )
    if not transmission > 0:
        raise ValueError(f"make_synthetic_hierarchy: transmission must be > 0, got {transmission!r}")
    if not noise >= 0:
        raise ValueError(f"make_synthetic_hierarchy: noise must be >= 0, got {noise!r}")
    if not trait_step >= 0:
        raise ValueError(f"make_synthetic_hierarchy: trait_step must be >= 0, got {trait_step!r}")
    if not (0 < val_prop and 0 < test_prop and val_prop + test_prop < 1):
        raise ValueError(
            "make_synthetic_hierarchy: val_prop and test_prop must be > 0 with a sum below 1, got "
            f"{val_prop!r} and {test_prop!r}"
        )


def _grow_tree(num_nodes: int, rng: np.random.Generator) -> np.ndarray:
    """Return the parent of every node of a preferential-attachment tree (``parent[0] = -1``).

    Node v attaches to an earlier node p with probability proportional to 1 + children(p). The urn
    contains each node once, plus once per child, so a uniform draw from it has that distribution.
    """
    parent = np.full(num_nodes, -1, dtype=np.int64)
    urn = np.empty(2 * num_nodes, dtype=np.int64)
    urn[0] = 0
    urn_size = 1
    for node in range(1, num_nodes):
        chosen = urn[rng.integers(urn_size)]
        parent[node] = chosen
        urn[urn_size] = chosen
        urn[urn_size + 1] = node
        urn_size += 2
    return parent


def _spread(parent, susceptibility, transmission, rng) -> tuple[np.ndarray, np.ndarray]:
    """Run the downward epidemic; return (infected flags, infection times, inf where uninfected)."""
    num_nodes = len(parent)
    is_source = np.zeros(num_nodes, dtype=bool)
    is_source[0] = True
    is_source[rng.choice(num_nodes, size=max(1, num_nodes // 100), replace=False)] = True
    coin = rng.random(num_nodes)
    delay = rng.exponential(1.0, size=num_nodes) / (0.5 + susceptibility)

    infected = np.zeros(num_nodes, dtype=bool)
    time = np.full(num_nodes, np.inf)
    # parents precede their children, so one pass in node order is a breadth-complete sweep
    for node in range(num_nodes):
        up = parent[node]
        caught = up >= 0 and infected[up] and coin[node] < min(1.0, transmission * susceptibility[node])
        if is_source[node] and not caught:
            infected[node], time[node] = True, 0.0
        elif caught:
            infected[node], time[node] = True, time[up] + delay[node]
    return infected, time


def make_synthetic_hierarchy(
    num_nodes: int = 1000,
    *,
    seed: int = 0,
    task: str = "nc",
    feature_dim: int = 8,
    transmission: float = 1.8,
    noise: float = 0.3,
    trait_step: float = 0.3,
    val_prop: float = 0.15,
    test_prop: float = 0.15,
) -> Data:
    """Generate a tree with SIR-style epidemic labels, shaped like the Disease benchmark.

    The process, all drawn from ``numpy.random.default_rng(seed)``:

    1. **Tree.** Node v = 1, 2, ... attaches to an earlier node p with probability proportional to
       1 + children(p) (preferential branching), so a few hubs and long thin branches appear.
    2. **Susceptibility** ``s_v ~ Uniform(0, 1)``.
    3. **Spreading.** The root and ``max(1, N // 100)`` random index cases are infected at time 0.
       The infection passes from an infected parent to a child with probability
       ``min(1, transmission * s_child)``, after a delay ``Exp(1) / (0.5 + s_child)``. Nodes that
       are never reached stay susceptible. With the defaults roughly 10-50% of nodes end up
       infected, depending on the seed.
    4. **Labels** ``y``: 1 for infected (removed, in SIR terms), 0 for susceptible.
    5. **Features** (``feature_dim`` columns, float32), each with Gaussian noise added:

       * column 0: ``s_v``, noise of standard deviation ``noise``;
       * column 1: the infection time divided by the largest one, or a Uniform(0.5, 1.5) decoy
         for uninfected nodes, noise ``noise``;
       * column 2: the depth divided by the tree height, noise ``noise / 2``;
       * the other columns: inherited traits, a Brownian motion down the tree. The root draws
         ``N(0, 1)`` and every child adds an ``N(0, trait_step^2)`` step to its parent's values, so
         adjacent nodes have close traits and the traits locate a node in the hierarchy.

    A label thus depends on the node's own features and on its position (whether its parent was
    infected), so both a feature-only and a graph-only classifier do better than the majority
    class, and a graph model that uses both does better still. For link prediction, the traits
    make an edge between nodes of nearby traits likely, as similar traits are for real contacts.

    Args:
        num_nodes: number of nodes, at least 20 (default: 1000).
        seed: seed of every random draw (default: 0); equal seeds give identical graphs.
        task: ``"nc"`` or ``"lp"`` (default: ``"nc"``).
        feature_dim: number of feature columns, at least 3 (default: 8).
        transmission: factor on the per-edge infection probability (default: 1.8).
        noise: standard deviation of the feature noise (default: 0.3).
        trait_step: standard deviation of the per-edge step of the inherited traits (default: 0.3).
        val_prop: validation share of the nodes (NC) or edges (LP) (default: 0.15).
        test_prop: test share of the nodes (NC) or edges (LP) (default: 0.15).

    Returns:
        A ``Data`` with the fields of :func:`~hypersst.data.load_hgnn_dataset` under
        ``protocol="clean"`` for the task, and ``y`` for both tasks. NC splits are disjoint and
        stratified unless a class has fewer than 10 nodes. LP negatives exclude every positive
        and self-pair.
        ``meta["comparable"]`` is False.
    """
    _check_arguments(num_nodes, task, feature_dim, transmission, noise, trait_step, val_prop, test_prop)
    rng = np.random.default_rng(seed)

    parent = _grow_tree(num_nodes, rng)
    susceptibility = rng.uniform(0.0, 1.0, size=num_nodes)
    infected, time = _spread(parent, susceptibility, transmission, rng)

    depth = np.zeros(num_nodes)
    for node in range(1, num_nodes):
        depth[node] = depth[parent[node]] + 1
    finite_time = time[infected]
    time_scale = finite_time.max() if finite_time.max() > 0 else 1.0
    # uninfected nodes get a decoy time, so the column alone does not reveal the label
    decoy_time = rng.uniform(0.5, 1.5, size=num_nodes)
    scaled_time = np.where(infected, time / time_scale, decoy_time)

    features = rng.normal(0.0, 1.0, size=(num_nodes, feature_dim))
    steps = rng.normal(0.0, trait_step, size=(num_nodes, feature_dim - _NUM_PROCESS_FEATURES))
    # parents precede their children, so one pass in node order accumulates the steps from the root
    for node in range(1, num_nodes):
        features[node, _NUM_PROCESS_FEATURES:] = features[parent[node], _NUM_PROCESS_FEATURES:] + steps[node]
    features[:, 0] = susceptibility + noise * rng.normal(size=num_nodes)
    features[:, 1] = scaled_time + noise * rng.normal(size=num_nodes)
    features[:, 2] = depth / depth.max() + 0.5 * noise * rng.normal(size=num_nodes)

    labels = infected.astype(np.int64)
    tree_edges = np.stack([parent[1:], np.arange(1, num_nodes)], axis=1)
    pairs = np.sort(tree_edges, axis=1)

    meta = {
        "name": "synthetic_hierarchy",
        "task": task,
        "protocol": "clean",
        "split_seed": int(seed),
        "features": "synthetic",
        "comparable": False,
        "note": "synthetic hierarchy for smoke tests, not a benchmark",
        "params": {
            "num_nodes": int(num_nodes),
            "seed": int(seed),
            "feature_dim": int(feature_dim),
            "transmission": float(transmission),
            "noise": float(noise),
            "trait_step": float(trait_step),
        },
    }
    data = Data(
        x=torch.from_numpy(features).float(),
        y=torch.from_numpy(labels),
        num_nodes=num_nodes,
    )
    if task == "nc":
        # stratification needs a few nodes of each class; tiny graphs can be almost all infected
        stratify = np.bincount(labels, minlength=2).min() >= 10
        train_idx, val_idx, test_idx = clean_node_split(labels, val_prop, test_prop, seed, stratify=stratify)
        data.edge_index = _edge_index(pairs)
        data.train_idx = torch.from_numpy(train_idx)
        data.val_idx = torch.from_numpy(val_idx)
        data.test_idx = torch.from_numpy(test_idx)
        data.num_classes = 2
    else:
        split = clean_edge_split(pairs, num_nodes, val_prop=val_prop, test_prop=test_prop, seed=seed)
        data.edge_index = _edge_index(split["train_pos"])
        for key in ("train_pos", "val_pos", "val_neg", "test_pos", "test_neg", "all_pos"):
            data[key] = _pairs_tensor(split[key])
    data.meta = meta
    return data
