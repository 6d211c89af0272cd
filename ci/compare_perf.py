#!/usr/bin/env python3
"""Alert when throughput dropped: ``python ci/compare_perf.py baseline.log current.log``.

The seed's regression step: both runs captured with ``tee`` (or their results.json), compared
scenario by scenario; exit 3 when any throughput fell more than --max-drop percent.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

try:
    import stress  # noqa: F401
except ModuleNotFoundError:  # run from a checkout without the package installed
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from stress.compare import DEFAULT_MAX_DROP_PCT, run_comparison
from stress.errors import StressError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("baseline", type=Path, help="baseline log or results.json")
    parser.add_argument("current", type=Path, help="current log or results.json")
    parser.add_argument("--max-drop", type=float, default=DEFAULT_MAX_DROP_PCT, metavar="PCT",
                        help=f"largest drop allowed in percent (default {DEFAULT_MAX_DROP_PCT:g})")
    args = parser.parse_args(argv)
    try:
        return run_comparison(args.baseline, args.current, args.max_drop)
    except StressError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return int(exc.exit_code)


if __name__ == "__main__":
    sys.exit(main())
