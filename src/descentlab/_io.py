"""Atomic file writes: a temporary file in the target folder, then ``os.replace``.

A crash or an exception while writing never leaves a half-written file behind.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path

__all__ = ["atomic_write", "save_figure"]


def atomic_write(path: str | os.PathLike, write: Callable[[str], None]) -> Path:
    """Call ``write(temporary_path)`` and move the result to ``path`` in one rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=path.suffix, dir=path.parent)
    os.close(handle)
    try:
        write(temporary)
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise
    return path


def save_figure(figure, path: str | os.PathLike, dpi: int = 110) -> Path:
    """Write a matplotlib figure atomically (format from the suffix) and close it."""
    import matplotlib.pyplot as plt

    suffix = Path(path).suffix.lstrip(".").lower() or "png"
    try:
        return atomic_write(
            path, lambda tmp: figure.savefig(tmp, format=suffix, dpi=dpi, bbox_inches="tight")
        )
    finally:
        plt.close(figure)
