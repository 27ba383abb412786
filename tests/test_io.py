import os
import stat

import pytest

from hypersst._io import atomic_open, atomic_write_text


def test_write_replaces_the_file(tmp_path):
    path = atomic_write_text(tmp_path / "deep" / "table.txt", "first\n")
    atomic_write_text(path, "second\n")
    assert path.read_text() == "second\n"
    assert sorted(item.name for item in path.parent.iterdir()) == ["table.txt"]


def test_failed_block_keeps_the_old_file(tmp_path):
    path = atomic_write_text(tmp_path / "table.txt", "kept\n")
    with pytest.raises(KeyboardInterrupt):
        with atomic_open(path, "w") as stream:
            stream.write("partial")
            raise KeyboardInterrupt
    assert path.read_text() == "kept\n"
    assert [item.name for item in tmp_path.iterdir()] == ["table.txt"], "the temporary file must be removed"


def test_new_file_follows_the_umask(tmp_path):
    previous = os.umask(0o027)
    try:
        path = atomic_write_text(tmp_path / "table.txt", "x")
    finally:
        os.umask(previous)
    assert stat.S_IMODE(path.stat().st_mode) == 0o640


def test_binary_mode_writes_bytes(tmp_path):
    with atomic_open(tmp_path / "blob.bin", "wb") as stream:
        stream.write(b"\x00\x01")
    assert (tmp_path / "blob.bin").read_bytes() == b"\x00\x01"


def test_other_modes_are_rejected(tmp_path):
    with pytest.raises(ValueError, match="mode must be 'w' or 'wb', got 'a'"):
        with atomic_open(tmp_path / "table.txt", "a"):
            pass
