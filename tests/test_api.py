import subprocess
import sys

import pytest

import hypersst


def test_every_public_name_resolves():
    for name in hypersst.__all__:
        assert getattr(hypersst, name) is not None, name


def test_public_names_are_sorted():
    names = [name for name in hypersst.__all__ if name != "__version__"]
    assert names == sorted(names)


def test_unknown_attribute_raises():
    with pytest.raises(AttributeError, match="has no attribute 'SSTLayer'"):
        hypersst.SSTLayer


def test_import_does_not_load_optional_dependencies():
    code = "import sys, hypersst; print(any(m in sys.modules for m in ('torch_geometric', 'galore_torch')))"
    output = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    assert output.strip() == "False"
