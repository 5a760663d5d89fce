"""Atomic file writes: a temporary file in the target folder, then ``os.replace``.

A crash or an exception while writing never leaves a half-written file behind.
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

__all__ = ["atomic_write", "save_figure", "writable_directory"]


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
    """Write a matplotlib figure atomically (format from the suffix).

    A figure that pyplot manages (made with ``plt.figure``/``plt.subplots``) is closed afterwards, as
    pyplot needs; any other figure is left as it is. pyplot itself is never imported here.
    """
    suffix = Path(path).suffix.lstrip(".").lower() or "png"
    try:
        return atomic_write(
            path, lambda tmp: figure.savefig(tmp, format=suffix, dpi=dpi, bbox_inches="tight")
        )
    finally:
        pyplot = sys.modules.get("matplotlib.pyplot")
        if pyplot is not None:  # without pyplot imported, no figure can be registered with it
            pyplot.close(figure)


def writable_directory(path: str | os.PathLike, what: str = "out") -> Path:
    """Create the folder ``path`` if needed and check files can be written there;
    ``ValueError`` naming ``what`` otherwise."""
    directory = Path(path)
    if directory.exists() and not directory.is_dir():
        raise ValueError(f"{what}: {str(directory)!r} exists and is not a directory")
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ValueError(f"{what}: cannot create directory {str(directory)!r}: {error.strerror}") from None
    if not os.access(directory, os.W_OK | os.X_OK):
        raise ValueError(f"{what}: directory {str(directory)!r} is not writable")
    return directory
