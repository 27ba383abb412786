"""Fixtures for the graph-data tests: the HGNN data folder and datasets loaded once per session."""

import os
from pathlib import Path

import pytest

from hypersst.data import load_hgnn_dataset

HGNN_ROOT = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "hgnn"


@pytest.fixture(scope="session")
def hgnn_root() -> Path:
    """Return the HGNN data folder; skip when it is absent, but fail when CI=true."""
    if not HGNN_ROOT.is_dir():
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI=true requires the HGNN data at {HGNN_ROOT}, but the folder is missing")
        pytest.skip(f"HGNN data folder {HGNN_ROOT} not found on this machine")
    return HGNN_ROOT


@pytest.fixture(scope="session")
def load(hgnn_root):
    """Return a cached ``load_hgnn_dataset(name, task, protocol=..., features=...)``."""
    cache = {}

    def _load(name, task, protocol="clean", features="auto"):
        key = (name, task, protocol, features)
        if key not in cache:
            cache[key] = load_hgnn_dataset(name, task, root=hgnn_root, protocol=protocol, features=features)
        return cache[key]

    return _load
