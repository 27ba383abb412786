"""Image classification data: scikit-learn's bundled digits, and MNIST-format IDX files."""

from __future__ import annotations

import gzip
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Union

import numpy as np
import torch

__all__ = ["ImageSplits", "load_digits", "load_idx_dataset", "read_idx"]

IDX_FILES = {
    "train_images": "train-images-idx3-ubyte.gz",
    "train_labels": "train-labels-idx1-ubyte.gz",
    "test_images": "t10k-images-idx3-ubyte.gz",
    "test_labels": "t10k-labels-idx1-ubyte.gz",
}
IDX_DATASETS = ("mnist", "fashion-mnist")


@dataclass
class ImageSplits:
    """Flattened images scaled to zero mean and unit variance with the training statistics.

    Shapes:
        - ``x_train``: ``(n_train, features)`` float32; ``y_train``: ``(n_train,)`` int64
        - ``x_test``: ``(n_test, features)`` float32; ``y_test``: ``(n_test,)`` int64
    """

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    num_classes: int
    name: str

    @property
    def num_features(self) -> int:
        return self.x_train.shape[1]


def _standardize(train: np.ndarray, test: np.ndarray):
    mean = train.mean()
    std = train.std()
    return (train - mean) / std, (test - mean) / std


def _splits(x_train, y_train, x_test, y_test, name: str) -> ImageSplits:
    x_train, x_test = _standardize(x_train.astype(np.float64), x_test.astype(np.float64))
    return ImageSplits(
        x_train=torch.as_tensor(x_train, dtype=torch.float32),
        y_train=torch.tensor(np.asarray(y_train), dtype=torch.long),
        x_test=torch.as_tensor(x_test, dtype=torch.float32),
        y_test=torch.tensor(np.asarray(y_test), dtype=torch.long),
        num_classes=int(max(y_train.max(), y_test.max()) + 1),
        name=name,
    )


def load_digits(*, test_fraction: float = 0.25, seed: int = 0) -> ImageSplits:
    """Load scikit-learn's bundled 8x8 digits (1,797 images, 10 classes) with a stratified split.

    The data ships inside scikit-learn, so this works on a machine without any data folder.
    """
    from sklearn.datasets import load_digits as sklearn_digits
    from sklearn.model_selection import train_test_split

    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must lie in (0, 1), got {test_fraction}")
    bunch = sklearn_digits()
    x_train, x_test, y_train, y_test = train_test_split(
        bunch.data, bunch.target, test_size=test_fraction, random_state=seed, stratify=bunch.target
    )
    return _splits(x_train, y_train, x_test, y_test, "digits")


def read_idx(path: Union[str, os.PathLike]) -> np.ndarray:
    """Read an IDX file (optionally gzip-compressed) as used by MNIST and Fashion-MNIST.

    Raises:
        FileNotFoundError: if ``path`` does not exist.
        ValueError: if the header is not a valid unsigned-byte IDX header or the payload size disagrees.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"IDX file {str(path)!r} not found")
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as stream:
        raw = stream.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise ValueError(f"{path}: not an unsigned-byte IDX file (header {raw[:4].hex()})")
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    offset = 4 + 4 * ndim
    expected = int(np.prod(dims))
    if len(raw) - offset != expected:
        raise ValueError(f"{path}: header declares {expected} values but the file contains {len(raw) - offset}")
    return np.frombuffer(raw, dtype=np.uint8, offset=offset).reshape(dims)


def load_idx_dataset(
    name: str = "mnist",
    *,
    root: Optional[Union[str, os.PathLike]] = None,
    limit_train: Optional[int] = None,
) -> ImageSplits:
    """Load MNIST or Fashion-MNIST from the four standard IDX files in ``root/<name>``.

    Args:
        name: ``"mnist"`` or ``"fashion-mnist"``.
        root: folder that contains ``<name>/``; defaults to the ``HYPERSST_DATA`` environment variable.
        limit_train: keep only the first ``limit_train`` training images (for quick runs).

    Raises:
        ValueError: for an unknown ``name``.
        FileNotFoundError: if ``root`` is not given and ``HYPERSST_DATA`` is unset, or a file is missing.
    """
    if name not in IDX_DATASETS:
        raise ValueError(f"unknown image data set {name!r}; expected one of {IDX_DATASETS}")
    if root is None:
        root = os.environ.get("HYPERSST_DATA")
        if root is None:
            raise FileNotFoundError(
                f"no data root for {name!r}: pass root=... or set HYPERSST_DATA to the folder that contains {name}/"
            )
    folder = Path(root) / name
    arrays = {key: read_idx(folder / filename) for key, filename in IDX_FILES.items()}
    x_train = arrays["train_images"].reshape(len(arrays["train_images"]), -1)
    y_train = arrays["train_labels"]
    if limit_train is not None:
        x_train, y_train = x_train[:limit_train], y_train[:limit_train]
    x_test = arrays["test_images"].reshape(len(arrays["test_images"]), -1)
    return _splits(x_train, y_train, x_test, arrays["test_labels"], name)
