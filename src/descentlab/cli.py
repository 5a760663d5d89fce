"""The ``descentlab`` command (placeholder until the lab lands)."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    print("descentlab: the lab and its demo report are being built (issue: The lab).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
