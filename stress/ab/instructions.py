"""The gate's instruction measure: which scenarios it judges, and which functions got slower.

Instruction counts (``python -m stress run --measure instructions`` in each revision) judge
the unpaced scenarios under ``--measure auto``; the paced ones keep wall time. A count does
not drift from run to run, so an instruction-measured scenario gets one round and no
confirmation rounds. On a regression, each side runs once more under callgrind
(``--measure callgrind``) and the per-function costs per token of the two runs give the table
of the functions that grew (stress.profiling.callgrind.slower_functions); the flamegraphs
beside it come from stress.ab.flamegraphs.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from stress.ab.model import AbOptions, Revision, ScenarioMeasure, Side, measure_for
from stress.config.scenarios import load_scenarios
from stress.engine.instructions import FUNCTIONS_FILE, read_functions
from stress.errors import StressError
from stress.profiling.callgrind import growth_table, slower_functions

log = logging.getLogger("stress.ab")

GROWTH_ROWS = 8

# Run in the revision's environment: its own scenarios' pacing, as JSON {name: [token, consumer]}.
_PACING = """
import json, sys
from pathlib import Path
from stress.config.scenarios import load_scenarios
found = load_scenarios(Path(sys.argv[1]) if sys.argv[1] else None)
print(json.dumps({n: [s.token_delay_us, s.consumer_delay_us] for n, s in found.items()}))
"""


def _pacing(revision: Revision, scenarios_file: Path | None) -> dict[str, tuple[float, float]]:
    """Each scenario's (token_delay_us, consumer_delay_us) as the revision defines it; the
    gate's own definitions when the revision's kit cannot say."""
    argv = [sys.executable, "-c", _PACING, str(scenarios_file or "")]
    done = subprocess.run(argv, env=dict(revision.env), cwd=revision.cwd, capture_output=True,
                          text=True, timeout=120, check=False)
    try:
        data = json.loads(done.stdout)
        return {str(n): (float(v[0]), float(v[1])) for n, v in data.items()}
    except (ValueError, TypeError, AttributeError, IndexError):
        log.warning("%s: could not read its scenarios' pacing; using this kit's", revision.side)
    return {n: (s.token_delay_us, s.consumer_delay_us)
            for n, s in load_scenarios(scenarios_file).items()}


def counts_instructions(revision: Revision) -> bool:
    """Whether the revision's kit has `run --measure` (a kit before it cannot count)."""
    done = subprocess.run([sys.executable, "-m", "stress", "run", "--help"],
                          env=dict(revision.env), cwd=revision.cwd, capture_output=True,
                          text=True, timeout=120, check=False)
    return "--measure" in done.stdout


def scenario_measures(revisions: Mapping[Side, Revision], names: Sequence[str],
                      options: AbOptions) -> tuple[dict[str, ScenarioMeasure], str | None]:
    """Which measure judges each scenario (``--measure auto``: by head's pacing), and a note
    when instruction counts were asked for but a revision's own kit cannot take them."""
    if options.measure == "wall":
        return dict.fromkeys(names, "wall"), None
    lacking = [side for side, revision in revisions.items()
               if not counts_instructions(revision)]
    if lacking:
        note = (f"Every scenario was judged on wall time, not instruction counts: the "
                f"{' and '.join(lacking)} revision's own kit has no `run --measure` (it "
                "predates instruction counts)")
        log.warning("ab: %s", note)
        return dict.fromkeys(names, "wall"), note
    if options.measure == "instructions":
        return dict.fromkeys(names, "instructions"), None
    pacing = _pacing(revisions["head"], options.scenarios_file)
    return {n: measure_for("auto", *pacing.get(n, (1.0, 0.0))) for n in names}, None


def run_flags(measure: str, options: AbOptions) -> list[str]:
    """What `python -m stress run` gets for a measured run of that kind."""
    if measure == "wall":
        return []
    if measure == "cpu":  # a flamegraph's run: py-spy samples the scenario, not judged
        return ["--profile", "cpu"]
    return ["--measure", measure, "--instruction-tokens", str(options.instruction_tokens)]


def growth_from(run_dirs: Mapping[Side, Path], name: str) -> tuple[str, tuple[str, ...]]:
    """The Markdown table of the functions that grew, base against head, and its notes."""
    costs: dict[Side, dict[str, float]] = {}
    notes: list[str] = []
    for side, run_dir in run_dirs.items():
        functions, note = read_functions(run_dir / FUNCTIONS_FILE.format(name=name))
        costs[side] = functions
        if note and note not in notes:
            notes.append(note)
    rows = slower_functions(costs["base"], costs["head"], top=GROWTH_ROWS)
    if not rows:
        return "", (*notes, "callgrind found no function whose instructions per token grew")
    return growth_table(rows, unit="instructions/token"), tuple(notes)


def explain_failed(exc: StressError) -> tuple[str, tuple[str, ...]]:
    return "", (f"No table of the functions that grew: {exc}",)
