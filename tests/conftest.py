"""Shared fixtures: dtype tolerances and the location of the real data sets."""

import os
from pathlib import Path

import pytest
import torch

DTYPES = (torch.float32, torch.float64)

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(params=DTYPES, ids=["float32", "float64"])
def dtype(request):
    return request.param


@pytest.fixture
def shared_data() -> Path:
    """Return ``../shared/data``; skip when it is absent, except in CI where it must exist."""
    if not SHARED_DATA.is_dir():
        if os.environ.get("CI"):
            pytest.fail(f"CI requires the real data at {SHARED_DATA}, but the folder is missing")
        pytest.skip(f"real data folder {SHARED_DATA} not found on this machine")
    return SHARED_DATA
