"""Atomic file writes: a reader finds either the previous file or the complete new one."""

from __future__ import annotations

import os
import secrets
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Iterator, Union

PathLike = Union[str, os.PathLike]


@contextmanager
def atomic_open(path: PathLike, mode: str = "w", **kwargs) -> Iterator[IO]:
    """Open a temporary file beside ``path`` and rename it over ``path`` when the block succeeds.

    The data is flushed to disk before the rename. If the block raises (including on
    ``KeyboardInterrupt``), the temporary file is removed and ``path`` is left as it was. The new file
    gets the permissions that the process umask gives an ordinary new file.

    Args:
        path: destination file; its parent folder is created if missing.
        mode: ``"w"`` for text or ``"wb"`` for bytes.
        **kwargs: passed to :func:`open`, e.g. ``newline=""`` for the csv module.
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_open: mode must be 'w' or 'wb', got {mode!r}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(descriptor, mode, **kwargs) as stream:
            yield stream
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def atomic_write_text(path: PathLike, text: str) -> Path:
    """Write ``text`` to ``path`` atomically (see :func:`atomic_open`) and return the path."""
    with atomic_open(path, "w", encoding="utf-8") as stream:
        stream.write(text)
    return Path(path)
