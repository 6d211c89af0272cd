"""A regression's CPU flamegraphs, base beside head: where the time went on each side.

On a regression the gate runs the scenario once more on each side with py-spy attached
(``python -m stress run NAME --profile cpu``, the kit's own CPU profile, at the gate's
``--scale``), copies the two SVGs into ``flamegraphs/`` and writes a page showing them side
by side. One run each, one after the other: py-spy samples by the clock, so a run beside it
would change the picture. The flamegraphs show where the time went, not the verdict: that
rests on the rounds (or the counts) alone.
"""

from __future__ import annotations

import html
import shutil
from collections.abc import Callable, Mapping
from pathlib import Path

from stress.ab.model import Measurement, Side
from stress.report.files import bounded_name, write_file_atomically

FOLDER = "flamegraphs"
_SVG_SUFFIX = "-cpu-flamegraph.svg"  # what `run --profile cpu` writes (profiling.cpu_profiler)

_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{title}</title>
<style>
 body {{ font-family: system-ui, sans-serif; margin: 1em; }}
 .pair {{ display: flex; gap: 1em; }}
 .pair figure {{ flex: 1 1 50%; margin: 0; min-width: 0; }}
 .pair img {{ width: 100%; border: 1px solid #ccc; }}
 figcaption {{ font-weight: bold; margin-bottom: .3em; }}
</style>
</head>
<body>
<h1>{title}</h1>
<p>CPU flamegraphs of one run each (py-spy), base on the left, head on the right. The width
of a frame is its share of the time on the CPU. Open one on its own to zoom into a frame.
The gate's verdict rests on its measure, not on these.</p>
<div class="pair">
{figures}
</div>
</body>
</html>
"""


def _figure(side: Side, svg: str, label: str) -> str:
    return (f'<figure><figcaption>{side}: {html.escape(label)} '
            f'(<a href="{html.escape(svg)}">open</a>)</figcaption>'
            f'<img src="{html.escape(svg)}" alt="CPU flamegraph of {side}"></figure>')


def flamegraph_pair(runs: Mapping[Side, Callable[[], Measurement]], name: str, out_dir: Path,
                    *, number: int, labels: Mapping[Side, str] | None = None
                    ) -> tuple[str | None, str | None]:
    """Profile ``name`` on each side (``runs[side]()`` is one ``run --profile cpu`` into
    ``runs/NAME/rNN-SIDE-cpu``) and write the page. Returns the page's path relative to
    ``out_dir``, or None and why there is none."""
    folder = out_dir / FOLDER
    svgs: dict[Side, str] = {}
    problems = []
    for side, run in runs.items():
        found = run()
        source = out_dir / "runs" / name / f"r{number:02d}-{side}-cpu" / bounded_name(
            name, _SVG_SUFFIX)
        if not source.is_file():
            why = found.problem or "the run wrote no flamegraph (is py-spy installed?)"
            problems.append(f"{side}: {why} (log: {found.log})")
            continue
        folder.mkdir(exist_ok=True)
        svgs[side] = bounded_name(name, f"-{side}.svg")
        shutil.copyfile(source, folder / svgs[side])
    if problems:
        return None, "No flamegraphs: " + "; ".join(problems)
    title = f"{name}: base and head CPU flamegraphs"
    figures = "\n".join(_figure(side, svg, (labels or {}).get(side, side))
                        for side, svg in svgs.items())
    page = bounded_name(name, ".html")
    write_file_atomically(folder / page, _PAGE.format(title=html.escape(title),
                                                      figures=figures))
    return f"{FOLDER}/{page}", None
