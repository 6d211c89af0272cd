#!/usr/bin/env python3
"""Alert when throughput dropped: ``python ci/compare_perf.py baseline.log current.log``.

The seed's regression step, kept for its command: the same as ``python -m stress compare``
(exit 3 when any throughput fell more than --max-drop percent).
"""

from __future__ import annotations

import sys
from pathlib import Path

try:
    import stress  # noqa: F401
except ModuleNotFoundError:  # run from a checkout without the package installed
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from stress.cli import main

if __name__ == "__main__":
    sys.exit(main(["compare", *sys.argv[1:]]))
