"""Run a block on a given number of torch intra-op threads, and put the setting back afterwards.

The built-in problems of ``descentlab train`` and the demo's training sections use tensors of a few
hundred columns, too small for intra-op parallelism to pay. On a machine whose cores are busy the
extra threads only wait for each other: measured on a shared 2-core machine, the demo's diagnosis
section took 32.6 s with torch's default of 2 threads and 12.8 s with 1 (40 s against 14 s of CPU).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch

__all__ = ["intra_op_threads"]


@contextmanager
def intra_op_threads(count: int = 1) -> Iterator[None]:
    """``torch.set_num_threads(count)`` inside the block, the previous number restored after it."""
    before = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)
