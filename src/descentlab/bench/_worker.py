"""A bench worker process: ``python -m descentlab.bench._worker PARENT queue DIR [WORKLOAD …]`` (or
``explore`` …).

Started by :class:`descentlab.bench.storage.Workers` as a plain subprocess (a fresh interpreter, so a
caller's script is never re-imported), one torch thread; it dies with its parent (``PR_SET_PDEATHSIG``
on Linux). It imports what a trial needs and builds the named workloads' data, then waits for ``go`` on
stdin (end of file: exit, nothing done) and writes one JSON line per finished trial to stdout.
"""

from __future__ import annotations

import json
import sys


def main(argv: list[str]) -> int:
    from pathlib import Path

    from .storage import _die_with_parent, _explore, _quiet_optuna, work_queue

    parent = int(argv[0])
    _die_with_parent(parent)
    import torch

    torch.set_num_threads(1)
    import torch._dynamo  # noqa: F401 - what the first optimizer would import: start-up, before the work

    from .workloads import get_workload

    for name in argv[3:] if argv[1] == "queue" else []:
        get_workload(name).data()
    if sys.stdin.readline().strip() != "go":
        return 0

    def report(message: dict) -> None:
        sys.stdout.write(json.dumps(message, allow_nan=True) + "\n")
        sys.stdout.flush()

    with _quiet_optuna():
        if argv[1] == "queue":
            work_queue(Path(argv[2]), report)
        else:
            url, count, seed, schedule, names = argv[2], int(argv[3]), int(argv[4]), argv[5], argv[6:]
            _explore(url, names, count, report, seed, schedule)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
