"""HyboNet graph networks (Chen et al., "Fully Hyperbolic Neural Networks", ACL 2022) and a Poincaré variant.

The Lorentz models follow HyboNet's released GCN code, generalized to any Lorentz
parameter ``k > 0`` (points satisfy ``<x, x>_L = -k``, sectional curvature ``-1/k``):

* **Input mapping.** Features ``x`` (N, F) become tangent vectors ``(0, x)`` at the origin
  and are mapped onto the hyperboloid with ``expmap0``. ``input_max_norm`` optionally
  rescales tangent vectors longer than that value (HyboNet caps them at 10), which keeps
  ``cosh`` finite for large feature rows such as Airport's. Sparse features (such as the N x N
  identity) map to sparse points, which the first layer takes without densifying them.
* **Layers.** Each graph convolution is a :class:`~hypersst.nn.LorentzLinear` followed by
  the Lorentz centroid over ``D^-1 (A + I)``: ``s = D^-1 (A + I) h`` and
  ``h <- sqrt(k) s / sqrt(|<s, s>_L|)``. The adjacency is a sparse matrix, never dense.
* **Depth.** ``num_layers`` has HyboNet's meaning: NC models have ``num_layers - 1``
  convolutions and LP models have ``num_layers``.
* **Decoders.** NC scores node ``i`` against class prototype ``c_j`` (a geoopt
  ``ManifoldParameter``) as ``2k + 2<h_i, c_j>_L + b_j = -d_L^2(h_i, c_j) + b_j``; LP scores
  an edge as ``2k + 2<h_u, h_v>_L``. ``d_L^2`` is the squared Lorentzian distance, which
  equals HyboNet's ``2 + 2<x, y>_L`` at ``k = 1``. Both tasks train with margin losses.

The Poincaré models (:class:`PoincareGCNNC`, :class:`PoincareGCNLP`) exist for curvature
sweeps through zero. They use :class:`~hypersst.nn.PoincareLinear` layers on a
stereographic manifold with signed curvature ``kappa <= 0`` (``kappa = 0`` is Euclidean),
aggregate in the tangent space at the origin (``expmap0(D^-1 (A + I) logmap0(h))``) and
decode with geodesic distances: NC scores ``-d^2(h_i, c_j) + b_j`` and LP scores
``-d^2(h_u, h_v)``. These are simple models built for the sweep, not a published
architecture. At ``kappa = 0`` geoopt's stereographic distance is twice the Euclidean
distance, so the scores are ``-4 ||h_u - h_v||^2``.
"""

from __future__ import annotations

from collections.abc import Callable

import geoopt
import torch
from torch import Tensor, nn
from torch_geometric.utils import add_remaining_self_loops, coalesce, degree

from hypersst._validation import check_sparse_matrix
from hypersst.manifolds import Lorentz, Stereographic
from hypersst.nn import LorentzLinear, PoincareLinear

__all__ = [
    "HyboNetEncoder",
    "HyboNetLP",
    "HyboNetNC",
    "LorentzAggregation",
    "LorentzGraphConvolution",
    "PoincareEncoder",
    "PoincareGCNLP",
    "PoincareGCNNC",
    "TangentAggregation",
    "lorentz_gram",
    "lorentz_pair_inner",
    "nc_margin_loss",
    "lp_margin_loss",
    "normalized_adjacency",
]


def normalized_adjacency(edge_index: Tensor, num_nodes: int, *, dtype: torch.dtype = torch.float32) -> Tensor:
    """Build ``D^-1 (A + I)`` as a sparse COO matrix.

    ``A`` is the simple graph of ``edge_index``: duplicate edges count once, and self-loops
    already present are kept once while missing ones are added.

    Args:
        edge_index: edges as a LongTensor of shape ``(2, E)``, both directions listed.
        num_nodes: number of nodes ``N``.
        dtype: floating dtype of the matrix values.

    Returns:
        A coalesced sparse tensor of shape ``(N, N)`` whose rows sum to 1.
    """
    if not isinstance(edge_index, Tensor) or edge_index.dtype != torch.long or edge_index.dim() != 2 or edge_index.size(0) != 2:
        raise ValueError(
            f"normalized_adjacency: edge_index must be a LongTensor of shape (2, E), got "
            f"{getattr(edge_index, 'dtype', type(edge_index).__name__)} of shape {tuple(getattr(edge_index, 'shape', ()))}"
        )
    if edge_index.numel() and (int(edge_index.min()) < 0 or int(edge_index.max()) >= num_nodes):
        raise ValueError(f"normalized_adjacency: edge_index has node ids outside [0, {num_nodes}); check num_nodes")
    edge_index = coalesce(edge_index, num_nodes=num_nodes)
    edge_index, _ = add_remaining_self_loops(edge_index, num_nodes=num_nodes)
    row, col = edge_index
    # Every row has its self-loop, so the degree is at least 1 and 1/deg is finite.
    inverse_degree = degree(row, num_nodes, dtype=dtype).reciprocal()
    values = inverse_degree[row]
    # The index range was checked above, so torch's sparse invariant check would only repeat it.
    return torch.sparse_coo_tensor(edge_index, values, (num_nodes, num_nodes), check_invariants=False).coalesce()


def _as_adjacency(graph: Tensor, num_nodes: int, dtype: torch.dtype) -> Tensor:
    """Return ``graph`` if it is already a sparse adjacency, else normalize the edge index."""
    if graph.is_sparse:
        if graph.shape != (num_nodes, num_nodes):
            raise ValueError(f"adjacency has shape {tuple(graph.shape)} but the features have {num_nodes} rows")
        return graph.to(dtype)
    return normalized_adjacency(graph, num_nodes, dtype=dtype)


def lorentz_gram(X: Tensor, Y: Tensor) -> Tensor:
    """Pairwise Minkowski inner products ``<x_i, y_j>_L = -x_i0 y_j0 + sum_s x_is y_js``.

    Shapes:
        - X: ``(n, d + 1)``, Y: ``(m, d + 1)``; output: ``(n, m)``.
    """
    return X[:, 1:] @ Y[:, 1:].transpose(0, 1) - X[:, :1] @ Y[:, :1].transpose(0, 1)


def lorentz_pair_inner(x: Tensor, y: Tensor) -> Tensor:
    """Row-wise Minkowski inner product.

    Shapes:
        - x, y: ``(..., d + 1)``; output: ``(...)``.
    """
    return (x[..., 1:] * y[..., 1:]).sum(dim=-1) - x[..., 0] * y[..., 0]


def nc_margin_loss(scores: Tensor, labels: Tensor, margin: float) -> Tensor:
    """Compute the multi-class hinge loss ``mean_{i, j} max(0, margin - s_{i, y_i} + s_{i, j})``.

    The mean runs over all ``n * C`` terms, so the ``j = y_i`` term adds the constant
    ``margin / C``, as in HyboNet.

    Shapes:
        - scores: ``(n, C)``; labels: ``(n,)``; output: scalar.
    """
    true_scores = scores.gather(1, labels.view(-1, 1))
    return torch.relu(margin - true_scores + scores).mean()


def lp_margin_loss(pos_scores: Tensor, neg_scores: Tensor, margin: float) -> Tensor:
    """Compute HyboNet's LP margin loss ``(margin + mean(max(0, margin - p + q))) / 2``.

    HyboNet averages ``max(0, margin - p + s)`` over ``s`` in ``[p, q]``, which gives this
    value: the positive half is the constant ``margin``.

    Shapes:
        - pos_scores, neg_scores: ``(E,)`` each, paired by position; output: scalar.
    """
    if pos_scores.shape != neg_scores.shape:
        raise ValueError(
            f"lp_margin_loss pairs each positive with one negative, got {tuple(pos_scores.shape)} "
            f"positive and {tuple(neg_scores.shape)} negative scores"
        )
    return 0.5 * (margin + torch.relu(margin - pos_scores + neg_scores).mean())


def _check_manifold(manifold, expected: type, model: str) -> None:
    if not isinstance(manifold, expected):
        raise TypeError(f"{model}: manifold must be a {expected.__module__}.{expected.__name__}, got {type(manifold).__name__}")


def _check_positive_int(value, name: str, model: str, minimum: int = 1) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{model}: {name} must be an int, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{model}: {name} must be at least {minimum}, got {value}")


def _cap_factor(norm: Tensor, max_norm: float) -> Tensor:
    """Factor that shortens a row of length ``norm`` to ``max_norm`` when it is longer, else 1."""
    # A zero row keeps factor 1: the division is only used where norm > max_norm > 0.
    return torch.where(norm > max_norm, max_norm / norm.clamp_min(max_norm), torch.ones_like(norm))


def _cap_norm(u: Tensor, max_norm: float | None) -> Tensor:
    """Rescale rows of ``u`` longer than ``max_norm`` to that length, keeping their direction."""
    if max_norm is None:
        return u
    return u * _cap_factor(u.norm(dim=-1, keepdim=True), max_norm)


class LorentzAggregation(nn.Module):
    """Lorentz centroid of each node and its neighbours, weighted by ``D^-1 (A + I)``.

    Args:
        manifold: the :class:`~hypersst.manifolds.Lorentz` manifold of the points.

    Shapes:
        - input: points ``(N, d + 1)`` and an edge index ``(2, E)`` or a sparse adjacency
          from :func:`normalized_adjacency`; output: points ``(N, d + 1)``.
    """

    def __init__(self, manifold) -> None:
        super().__init__()
        self.manifold = manifold

    def forward(self, x: Tensor, graph: Tensor) -> Tensor:
        adjacency = _as_adjacency(graph, x.size(0), x.dtype)
        # The centroid guards the weighted sum against rounding far from the origin (see Lorentz.centroid).
        return self.manifold.centroid(x, adjacency, dim=-1)


class LorentzGraphConvolution(nn.Module):
    """One HyboNet layer: :class:`~hypersst.nn.LorentzLinear`, then :class:`LorentzAggregation`.

    Args:
        in_features: ambient input dimension (time coordinate included).
        out_features: ambient output dimension.
        manifold: the Lorentz manifold.
        dropout: dropout probability applied to the linear layer's input.
        nonlin: activation applied to the whole input point before the linear map, or None.
        bias: whether the linear map has a bias.
        method: ``"full"``, ``"lora"``, ``"relora"`` or ``"sst"`` for the inner linear map.
        rank: rank of the low-rank methods; None for ``"full"``.
        linear_options: extra keyword arguments for the inner linear layer.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        manifold,
        *,
        dropout: float = 0.0,
        nonlin: Callable[[Tensor], Tensor] | None = None,
        bias: bool = True,
        method: str = "full",
        rank: int | None = None,
        linear_options: dict | None = None,
    ) -> None:
        super().__init__()
        self.linear = LorentzLinear(
            in_features,
            out_features,
            manifold,
            bias=bias,
            dropout=dropout,
            nonlin=nonlin,
            method=method,
            rank=rank,
            **(linear_options or {}),
        )
        self.aggregation = LorentzAggregation(manifold)

    def forward(self, x: Tensor, graph: Tensor) -> Tensor:
        return self.aggregation(self.linear(x), graph)


class _GraphEncoder(nn.Module):
    """Base of :class:`HyboNetEncoder` and :class:`PoincareEncoder` that validates and stores their common options.

    Subclasses build their layers in ``_build_convolutions``, which receives the layer
    options as keyword arguments, and define ``embed_input`` and ``forward``.
    """

    def __init__(
        self,
        in_features: int,
        *,
        dim: int,
        num_convolutions: int,
        manifold,
        method: str = "full",
        rank: int | None = None,
        dropout: float = 0.0,
        nonlin: Callable[[Tensor], Tensor] | None = None,
        bias: bool = True,
        input_max_norm: float | None = None,
        linear_options: dict | None = None,
    ) -> None:
        super().__init__()
        name = type(self).__name__
        _check_positive_int(in_features, "in_features", name)
        _check_positive_int(dim, "dim", name, minimum=2)
        _check_positive_int(num_convolutions, "num_convolutions", name)
        if input_max_norm is not None and not input_max_norm > 0:
            raise ValueError(f"{name}: input_max_norm must be positive or None, got {input_max_norm}")
        self.manifold = manifold
        self.input_max_norm = input_max_norm
        self._build_convolutions(
            in_features,
            dim,
            num_convolutions,
            method=method,
            rank=rank,
            dropout=dropout,
            nonlin=nonlin,
            bias=bias,
            linear_options=linear_options,
        )

    def _build_convolutions(self, in_features: int, dim: int, num_convolutions: int, **layer_options) -> None:
        raise NotImplementedError(f"{type(self).__name__} must define _build_convolutions")


class HyboNetEncoder(_GraphEncoder):
    """Map node features onto the hyperboloid and apply a stack of HyboNet convolutions.

    Args:
        in_features: number of input features ``F``.
        dim: ambient dimension of every hidden layer (time coordinate included).
        num_convolutions: number of graph convolutions.
        manifold: the :class:`~hypersst.manifolds.Lorentz` manifold.
        method: linear-layer method for every convolution.
        rank: rank for the low-rank methods.
        dropout: dropout of every convolution.
        nonlin: activation of every convolution except the first, or None.
        bias: whether the linear maps have biases.
        input_max_norm: cap on the tangent norm of the input features, or None for no cap.
        linear_options: extra keyword arguments for the inner linear layers.

    Shapes:
        - input: features ``(N, F)`` and a graph; output: points ``(N, dim)``.
    """

    def _build_convolutions(self, in_features: int, dim: int, num_convolutions: int, *, nonlin, **layer_options) -> None:
        # The input gains the time coordinate, and ``dim`` already counts it.
        widths = [in_features + 1] + [dim] * num_convolutions
        self.layers = nn.ModuleList(
            LorentzGraphConvolution(
                widths[index],
                widths[index + 1],
                self.manifold,
                nonlin=None if index == 0 else nonlin,
                **layer_options,
            )
            for index in range(num_convolutions)
        )

    def embed_input(self, x: Tensor) -> Tensor:
        """Map features ``(N, F)`` to points ``(N, F + 1)`` with ``expmap0((0, x))``.

        Sparse COO or CSR features give a sparse COO result. It stores the time coordinate of every row
        and the space coordinates where ``x`` stores values, so no dense ``(N, F)`` matrix is formed, and
        the first layer takes it as it is.
        """
        if x.layout != torch.strided:
            return self._embed_sparse_input(x)
        u = _cap_norm(x, self.input_max_norm)
        u = torch.cat([torch.zeros_like(u[:, :1]), u], dim=-1)
        points = self.manifold.expmap0(u, dim=-1)
        if not torch.isfinite(points).all():
            raise RuntimeError(
                f"{type(self).__name__}: expmap0 of the input features overflowed (largest feature norm "
                f"{float(x.norm(dim=-1).max()):.4g}); set input_max_norm (HyboNet uses 10) or rescale the features"
            )
        return points

    def _embed_sparse_input(self, x: Tensor) -> Tensor:
        """Compute :meth:`embed_input` for a sparse matrix: scale the stored values of each row, add the time column."""
        name = type(self).__name__
        check_sparse_matrix(x, name, label="sparse features", shape="(N, F)")
        x = x.to_sparse_coo().coalesce()
        num_rows, num_features = x.shape
        row, col = x.indices()
        norm = torch.sparse.sum(x.pow(2), dim=1).to_dense().sqrt()
        factor = torch.ones_like(norm) if self.input_max_norm is None else _cap_factor(norm, self.input_max_norm)
        length = norm * factor

        # expmap0 depends on (0, u) only through ||u||, so mapping (0, ||u_i||) gives row i's time coordinate
        # and, in its second coordinate, ||u_i|| times the factor that scales u_i's space coordinates.
        compact = self.manifold.expmap0(torch.stack((torch.zeros_like(length), length), dim=-1), dim=-1)
        # A zero row stores no values, so its scale is never read. Dividing by 1 there avoids 0/0.
        scale = factor * compact[:, 1] / torch.where(length > 0, length, torch.ones_like(length))

        nodes = torch.arange(num_rows, device=x.device)
        indices = torch.cat((torch.stack((nodes, torch.zeros_like(nodes))), torch.stack((row, col + 1))), dim=1)
        values = torch.cat((compact[:, 0], x.values() * scale[row]))
        if not torch.isfinite(values).all():
            raise RuntimeError(
                f"{name}: expmap0 of the input features overflowed (largest feature norm "
                f"{float(norm.max()):.4g}); set input_max_norm (HyboNet uses 10) or rescale the features"
            )

        # The indices are those of a valid input plus (i, 0) for every row, so torch's invariant check would
        # only repeat them.
        points = torch.sparse_coo_tensor(indices, values, (num_rows, num_features + 1), check_invariants=False)
        return points.coalesce()

    def forward(self, x: Tensor, graph: Tensor, *, embedded: bool = False) -> Tensor:
        """Encode features ``x`` (N, F), or points (N, F + 1) from :meth:`embed_input` when ``embedded``."""
        h = x if embedded else self.embed_input(x)
        adjacency = _as_adjacency(graph, h.size(0), h.dtype)
        for layer in self.layers:
            h = layer(h, adjacency)
        return h


class _NodeClassifier(nn.Module):
    """Base of :class:`HyboNetNC` and :class:`PoincareGCNNC` that validates their options and builds the encoder.

    Subclasses set ``_manifold_type`` (the manifold class they accept) and ``_encoder_type``,
    and define ``_init_prototypes`` (the initial prototype points) and ``decode`` (the class scores).
    """

    _manifold_type: type
    _encoder_type: type[_GraphEncoder]

    def __init__(
        self,
        in_features: int,
        num_classes: int,
        *,
        dim: int = 16,
        num_layers: int = 3,
        manifold,
        method: str = "full",
        rank: int | None = None,
        dropout: float = 0.0,
        nonlin: Callable[[Tensor], Tensor] | None = None,
        bias: bool = True,
        input_max_norm: float | None = None,
        linear_options: dict | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        name = type(self).__name__
        _check_manifold(manifold, self._manifold_type, name)
        _check_positive_int(num_classes, "num_classes", name, minimum=2)
        _check_positive_int(num_layers, "num_layers", name, minimum=2)
        self.manifold = manifold
        self.encoder = self._encoder_type(
            in_features,
            dim=dim,
            num_convolutions=num_layers - 1,
            manifold=manifold,
            method=method,
            rank=rank,
            dropout=dropout,
            nonlin=nonlin,
            bias=bias,
            input_max_norm=input_max_norm,
            linear_options=linear_options,
        )
        self.prototypes = geoopt.ManifoldParameter(self._init_prototypes(num_classes, dim, dtype), manifold=manifold)
        self.class_bias = nn.Parameter(torch.zeros(num_classes, dtype=self.prototypes.dtype))

    def _init_prototypes(self, num_classes: int, dim: int, dtype: torch.dtype | None) -> Tensor:
        raise NotImplementedError(f"{type(self).__name__} must define _init_prototypes")

    def decode(self, h: Tensor) -> Tensor:
        raise NotImplementedError(f"{type(self).__name__} must define decode")

    def forward(self, x: Tensor, graph: Tensor, *, embedded: bool = False) -> Tensor:
        return self.decode(self.encoder(x, graph, embedded=embedded))


class _LinkPredictor(nn.Module):
    """Base of :class:`HyboNetLP` and :class:`PoincareGCNLP` that validates their options and builds the encoder.

    Subclasses set ``_manifold_type`` (the manifold class they accept) and ``_encoder_type``,
    and define ``score`` (the edge scores).
    """

    _manifold_type: type
    _encoder_type: type[_GraphEncoder]

    def __init__(
        self,
        in_features: int,
        *,
        dim: int = 16,
        num_layers: int = 2,
        manifold,
        method: str = "full",
        rank: int | None = None,
        dropout: float = 0.0,
        nonlin: Callable[[Tensor], Tensor] | None = None,
        bias: bool = True,
        input_max_norm: float | None = None,
        linear_options: dict | None = None,
    ) -> None:
        super().__init__()
        _check_manifold(manifold, self._manifold_type, type(self).__name__)
        self.manifold = manifold
        self.encoder = self._encoder_type(
            in_features,
            dim=dim,
            num_convolutions=num_layers,
            manifold=manifold,
            method=method,
            rank=rank,
            dropout=dropout,
            nonlin=nonlin,
            bias=bias,
            input_max_norm=input_max_norm,
            linear_options=linear_options,
        )

    def score(self, h: Tensor, pairs: Tensor) -> Tensor:
        raise NotImplementedError(f"{type(self).__name__} must define score")

    def forward(self, x: Tensor, graph: Tensor, *, embedded: bool = False) -> Tensor:
        return self.encoder(x, graph, embedded=embedded)


class HyboNetNC(_NodeClassifier):
    """HyboNet node classifier: encoder plus hyperbolic class prototypes.

    Args:
        in_features: number of input features ``F``.
        num_classes: number of classes ``C`` (at least 2).
        dim: ambient dimension of the hidden layers (default: 16, i.e. 15-dimensional space).
        num_layers: HyboNet's layer count; the model has ``num_layers - 1`` convolutions.
        manifold: the :class:`~hypersst.manifolds.Lorentz` manifold.
        method: ``"full"``, ``"lora"``, ``"relora"`` or ``"sst"`` for every LorentzLinear.
        rank: rank for the low-rank methods.
        dropout: dropout of every convolution.
        nonlin: activation of every convolution except the first, or None.
        bias: whether the linear maps have biases.
        input_max_norm: cap on the tangent norm of the input features, or None.
        linear_options: extra keyword arguments for the inner linear layers.
        dtype: dtype of the prototypes and class biases (default: torch's default dtype).
            Pass the dtype the model will run in: prototypes built in float32 and cast to
            float64 lie on the hyperboloid only to float32 accuracy.

    Shapes:
        - input: features ``(N, F)`` and a graph; output: class scores ``(N, C)``.
    """

    _manifold_type = Lorentz
    _encoder_type = HyboNetEncoder

    def _init_prototypes(self, num_classes: int, dim: int, dtype: torch.dtype | None) -> Tensor:
        """Return points ``expmap0((0, g / ||g||))`` with Gaussian ``g``: random directions at distance 1."""
        direction = torch.randn(num_classes, dim - 1).to(dtype or torch.get_default_dtype())
        direction = direction / direction.norm(dim=-1, keepdim=True)
        u = torch.cat([torch.zeros_like(direction[:, :1]), direction], dim=-1)
        return self.manifold.expmap0(u, dim=-1)

    def decode(self, h: Tensor) -> Tensor:
        """Score points ``(N, dim)`` against every class: ``2k + 2<h, c>_L + b`` of shape ``(N, C)``."""
        return 2 * self.manifold.k + 2 * lorentz_gram(h, self.prototypes) + self.class_bias


class HyboNetLP(_LinkPredictor):
    """HyboNet link predictor: encoder plus the score ``2k + 2<h_u, h_v>_L``.

    Args:
        in_features: number of input features ``F``.
        dim: ambient dimension of the hidden layers (default: 16).
        num_layers: number of convolutions (HyboNet's LP count).
        manifold: the :class:`~hypersst.manifolds.Lorentz` manifold.
        method, rank, dropout, nonlin, bias, input_max_norm, linear_options: as for
            :class:`HyboNetNC`.

    Shapes:
        - input: features ``(N, F)`` and a graph; output: node embeddings ``(N, dim)``.
    """

    _manifold_type = Lorentz
    _encoder_type = HyboNetEncoder

    def score(self, h: Tensor, pairs: Tensor) -> Tensor:
        """Score node pairs ``(2, E)``: ``2k + 2<h_u, h_v>_L``, at most 0, shape ``(E,)``."""
        return 2 * self.manifold.k + 2 * lorentz_pair_inner(h[pairs[0]], h[pairs[1]])


class TangentAggregation(nn.Module):
    """Mean over ``D^-1 (A + I)`` in the tangent space at the origin: ``expmap0(A logmap0(h))``.

    Args:
        manifold: a :class:`~hypersst.manifolds.Stereographic` manifold.
    """

    def __init__(self, manifold) -> None:
        super().__init__()
        self.manifold = manifold

    def forward(self, x: Tensor, graph: Tensor) -> Tensor:
        adjacency = _as_adjacency(graph, x.size(0), x.dtype)
        tangent = self.manifold.logmap0(x, dim=-1)
        return self.manifold.expmap0(torch.sparse.mm(adjacency, tangent), dim=-1)


class PoincareEncoder(_GraphEncoder):
    """Poincaré-ball (or Euclidean at ``kappa = 0``) counterpart of :class:`HyboNetEncoder`.

    Each layer is ``h <- TangentAggregation(PoincareLinear(act(h)))``, where ``act`` is
    applied in the tangent space at the origin (``expmap0(act(logmap0(h)))``) on every layer
    except the first. The hidden dimension is ``dim - 1``, so that a Lorentz model with
    ``dim`` ambient coordinates and this model have spaces of the same dimension.

    Args:
        in_features: number of input features ``F``.
        dim: Lorentz-equivalent ambient dimension; layers have ``dim - 1`` coordinates.
        num_convolutions: number of graph convolutions.
        manifold: a :class:`~hypersst.manifolds.Stereographic` manifold with ``k <= 0``.
        method, rank, dropout, nonlin, bias, input_max_norm, linear_options: as for
            :class:`HyboNetEncoder`.
    """

    def _build_convolutions(
        self, in_features: int, dim: int, num_convolutions: int, *, nonlin, linear_options, **layer_options
    ) -> None:
        # The activation runs in the tangent space in forward, outside the linear layers.
        self.nonlin = nonlin
        widths = [in_features] + [dim - 1] * num_convolutions
        self.linears = nn.ModuleList(
            PoincareLinear(widths[index], widths[index + 1], self.manifold, **layer_options, **(linear_options or {}))
            for index in range(num_convolutions)
        )
        self.aggregation = TangentAggregation(self.manifold)

    def embed_input(self, x: Tensor) -> Tensor:
        """Map features ``(N, F)`` to points ``expmap0(x)`` of shape ``(N, F)``."""
        if x.layout != torch.strided:
            # NOTE: sparse features are densified here, so the N x N identity costs N^2 stored values.
            x = x.to_dense()
        return self.manifold.expmap0(_cap_norm(x, self.input_max_norm), dim=-1)

    def forward(self, x: Tensor, graph: Tensor, *, embedded: bool = False) -> Tensor:
        """Encode features ``x`` (N, F), or points from :meth:`embed_input` when ``embedded``."""
        h = x if embedded else self.embed_input(x)
        adjacency = _as_adjacency(graph, h.size(0), h.dtype)
        for index, linear in enumerate(self.linears):
            if index > 0 and self.nonlin is not None:
                h = self.manifold.expmap0(self.nonlin(self.manifold.logmap0(h, dim=-1)), dim=-1)
            h = self.aggregation(linear(h), adjacency)
        return h


class PoincareGCNNC(_NodeClassifier):
    """Poincaré node classifier with prototypes: scores ``-d^2(h_i, c_j) + b_j``.

    Arguments are those of :class:`HyboNetNC`, with a
    :class:`~hypersst.manifolds.Stereographic` manifold of curvature ``k <= 0``.
    """

    _manifold_type = Stereographic
    _encoder_type = PoincareEncoder

    def _init_prototypes(self, num_classes: int, dim: int, dtype: torch.dtype | None) -> Tensor:
        """Return points ``expmap0(0.5 g / ||g||)`` with Gaussian ``g``, well inside the unit ball at ``kappa = -1``."""
        direction = torch.randn(num_classes, dim - 1).to(dtype or torch.get_default_dtype())
        tangent = 0.5 * direction / direction.norm(dim=-1, keepdim=True)
        return self.manifold.expmap0(tangent, dim=-1)

    def decode(self, h: Tensor) -> Tensor:
        """Score points ``(N, dim - 1)`` against every class, shape ``(N, C)``."""
        distance = self.manifold.dist(h.unsqueeze(1), self.prototypes.unsqueeze(0), dim=-1)
        return -distance.pow(2) + self.class_bias


class PoincareGCNLP(_LinkPredictor):
    """Poincaré link predictor: scores ``-d^2(h_u, h_v)``.

    Arguments are those of :class:`HyboNetLP`, with a
    :class:`~hypersst.manifolds.Stereographic` manifold of curvature ``k <= 0``.
    """

    _manifold_type = Stereographic
    _encoder_type = PoincareEncoder

    def score(self, h: Tensor, pairs: Tensor) -> Tensor:
        """Score node pairs ``(2, E)``: ``-d^2(h_u, h_v)``, shape ``(E,)``."""
        return -self.manifold.dist(h[pairs[0]], h[pairs[1]], dim=-1).pow(2)
