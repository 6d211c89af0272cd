"""Side-by-side regression gate: two revisions measured in turn on one machine, in one job.

Each revision (a git ref) is checked out into a temporary worktree and given an import path of
its own (``revisions``). Each measurement is one ``python -m stress run NAME`` in that
environment, and rounds alternate the order, base-head then head-base (``gate``). Each round
gives one ratio, head throughput / base throughput, and a scenario regresses when the median
ratio is below ``1 - max_drop / 100`` (``model``): figures from different runners or days never
meet. A scenario below the limit after its rounds is measured again, later, for more rounds and
judged on all of them: on a busy machine bad rounds come in clusters, and a gate that fails
unchanged code teaches people to ignore it. ``render`` writes ab.md, ab.json and the console
text.
"""

from stress.ab.gate import run_gate
from stress.ab.model import AbOptions, AbReport, ScenarioRounds
from stress.ab.render import render_markdown, render_text, write_outputs

__all__ = ["AbOptions", "AbReport", "ScenarioRounds", "render_markdown", "render_text",
           "run_gate", "write_outputs"]
