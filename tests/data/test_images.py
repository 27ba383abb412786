import gzip

import numpy as np
import pytest

from hypersst.data.images import load_digits, load_idx_dataset, read_idx


def test_digits_split_is_stratified_and_standardized():
    data = load_digits(seed=0)
    assert data.x_train.shape == (1347, 64)
    assert data.x_test.shape == (450, 64)
    assert data.num_classes == 10
    assert abs(float(data.x_train.mean())) < 1e-5
    test_counts = np.bincount(data.y_test.numpy(), minlength=10)
    all_counts = test_counts + np.bincount(data.y_train.numpy(), minlength=10)
    assert np.abs(test_counts - 0.25 * all_counts).max() <= 1


def test_mnist_statistics(shared_data):
    data = load_idx_dataset("mnist", root=shared_data)
    assert data.x_train.shape == (60000, 784)
    assert data.x_test.shape == (10000, 784)
    assert np.bincount(data.y_train.numpy()).tolist()[:3] == [5923, 6742, 5958]
    assert np.bincount(data.y_test.numpy()).tolist()[-2:] == [974, 1009]


def test_fashion_mnist_has_balanced_classes(shared_data):
    data = load_idx_dataset("fashion-mnist", root=shared_data, limit_train=None)
    assert np.bincount(data.y_train.numpy()).tolist() == [6000] * 10
    assert np.bincount(data.y_test.numpy()).tolist() == [1000] * 10


def test_read_idx_rejects_bad_header(tmp_path):
    path = tmp_path / "bad.gz"
    with gzip.open(path, "wb") as stream:
        stream.write(b"\x00\x00\x0d\x01" + (3).to_bytes(4, "big") + b"abc")
    with pytest.raises(ValueError, match="not an unsigned-byte IDX file"):
        read_idx(path)


def test_read_idx_rejects_truncated_payload(tmp_path):
    path = tmp_path / "short"
    path.write_bytes(b"\x00\x00\x08\x01" + (5).to_bytes(4, "big") + b"abc")
    with pytest.raises(ValueError, match="declares 5 values but the file contains 3"):
        read_idx(path)


def test_missing_root_names_the_environment_variable(monkeypatch):
    monkeypatch.delenv("HYPERSST_DATA", raising=False)
    with pytest.raises(FileNotFoundError, match="set HYPERSST_DATA"):
        load_idx_dataset("mnist")


def test_unknown_image_data_set_raises():
    with pytest.raises(ValueError, match="unknown image data set 'cifar'"):
        load_idx_dataset("cifar", root=".")
