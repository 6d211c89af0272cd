"""The gate's data: its options, the revisions measured, rounds and their ratios, verdicts.

No process is started here: everything is computed from the figures, so the judging can be
tested on measurements built in the test.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from stress.engine.options import DEFAULT_INSTRUCTION_TOKENS
from stress.errors import ExitCode
from stress.stats import median, percentile
from stress.target import DEFAULT_TARGET

Side = Literal["base", "head"]
Verdict = Literal["ok", "regression", "failed", "not compared"]
# How a scenario is judged: wall time (head/base tokens/s) or valgrind's instructions per
# token (head/base instructions a token). "auto" in AbOptions picks per scenario.
ScenarioMeasure = Literal["wall", "instructions"]
GateMeasure = Literal["wall", "instructions", "auto"]
DEFAULT_MAX_DROP_PCT = 20.0  # wall time: the noise floor of a shared runner is about ±11%
DEFAULT_MAX_GROWTH_PCT = 3.0  # instructions: two runs agree to a part in a million


@dataclass(frozen=True, kw_only=True)
class AbOptions:
    base_ref: str
    head_ref: str
    names: tuple[str, ...] = ()
    rounds: int = 5
    confirm_rounds: int = 5  # more rounds for a scenario below the limit; 0: none
    max_drop_pct: float = DEFAULT_MAX_DROP_PCT
    measure: GateMeasure = "wall"
    max_growth_pct: float = DEFAULT_MAX_GROWTH_PCT  # instructions per token, head over base
    instruction_tokens: int = DEFAULT_INSTRUCTION_TOKENS
    explain: bool = True  # on a regression: callgrind names what grew, py-spy draws both
    jobs: int = 0  # instruction counts run at once; 0: one per CPU
    scale: float = 1.0
    base_target: str = DEFAULT_TARGET
    head_target: str = DEFAULT_TARGET
    scenarios_file: Path | None = None
    out_dir: Path = Path("stress-ab")
    repo: Path = Path(".")
    keep: bool = False

    @property
    def min_ratio(self) -> float:
        return 1.0 - self.max_drop_pct / 100.0

    @property
    def max_instruction_ratio(self) -> float:
        return 1.0 + self.max_growth_pct / 100.0


def ratio_text(value: float) -> str:
    """0.8 -> '0.80', 0.875 -> '0.875': two decimals, more only when they matter."""
    text = f"{value:.4f}".rstrip("0")
    whole, _, decimals = text.partition(".")
    return f"{whole}.{decimals.ljust(2, '0')}"


def measured_text(value: float) -> str:
    """A measured ratio: three decimals, so 0.799 is not shown as the limit 0.80."""
    return f"{value:.3f}"


def rule_text(max_drop_pct: float) -> str:
    """The rule in the ratio's own terms, so nobody has to invert a percentage."""
    return (f"regression when median head/base < {ratio_text(1.0 - max_drop_pct / 100.0)} "
            f"(a drop of more than {max_drop_pct:g}%)")


def instruction_rule_text(max_growth_pct: float) -> str:
    return (f"regression when head/base instructions per token > "
            f"{ratio_text(1.0 + max_growth_pct / 100.0)} (more than {max_growth_pct:g}% more "
            "instructions a token)")


def measure_for(measure: GateMeasure, token_delay_us: float, consumer_delay_us: float
                ) -> ScenarioMeasure:
    """auto: instruction counts where CPU per token is the point (unpaced: no token or
    consumer delay), wall time where time is (paced: the delays set the pace, not the CPU)."""
    if measure != "auto":
        return measure
    return "instructions" if token_delay_us == 0 and consumer_delay_us == 0 else "wall"


@dataclass(frozen=True, kw_only=True)
class Spread:
    median: float
    low: float
    high: float
    q1: float
    q3: float


def spread(values: Sequence[float]) -> Spread:
    """Median, range and quartiles (linear interpolation, as ``statistics`` 'inclusive')."""
    if not values:
        raise ValueError("spread of no values")
    return Spread(median=median(values), low=min(values), high=max(values),
                  q1=percentile(values, 0.25), q3=percentile(values, 0.75))


def round_order(number: int) -> tuple[Side, Side]:
    """ABBA: odd rounds run base first, even rounds head first."""
    return ("base", "head") if number % 2 == 1 else ("head", "base")


@dataclass(frozen=True, kw_only=True)
class Revision:
    """A revision made ready to measure: its tree, and the environment its runs start in."""

    side: Side
    ref: str
    sha: str
    target: str
    tree: Path  # the revision's files
    cwd: Path  # where its runs start: outside the tree, so only PYTHONPATH decides imports
    env: Mapping[str, str]
    stress_file: str  # where `import stress` resolved in that environment
    own_kit: bool  # the revision holds the kit; its own copy runs
    setup: str  # how its code was made importable, in words

    @property
    def label(self) -> str:
        return f"{self.ref} ({self.sha[:12]})"


@dataclass(frozen=True, kw_only=True)
class Measurement:
    throughput: float | None = None  # tokens/s; None when the run gave no figure
    instructions_per_token: float | None = None  # an instruction-measured run's figure
    problem: str | None = None  # why there is no figure
    log: str = ""  # the run's output, relative to the gate's output folder


@dataclass(frozen=True, kw_only=True)
class Round:
    number: int
    base: Measurement
    head: Measurement
    measure: ScenarioMeasure = "wall"

    @property
    def order(self) -> tuple[Side, Side]:
        return round_order(self.number)

    @property
    def ratio(self) -> float | None:
        """head/base throughput (wall), or head/base instructions per token (instructions)."""
        if self.measure == "instructions":
            base, head = self.base.instructions_per_token, self.head.instructions_per_token
            return None if base is None or head is None or base <= 0 else head / base
        if self.base.throughput is None or self.head.throughput is None:
            return None
        return self.head.throughput / self.base.throughput


@dataclass(frozen=True, kw_only=True)
class ScenarioRounds:
    """One scenario's rounds and their verdict. A run without a figure ends the scenario."""

    name: str
    rounds: tuple[Round, ...] = ()
    not_compared: str | None = None  # e.g. "not in base (new in head)"
    # Set when the first rounds' median was below the limit and more rounds followed.
    suspect_median: float | None = None
    confirm_after: int = 0  # the rounds measured before the confirmation rounds
    measure: ScenarioMeasure = "wall"
    # On an instruction regression: the functions that grew (a Markdown table) and notes.
    growth_table: str | None = None
    growth_notes: tuple[str, ...] = ()
    # On a regression: the page showing base's and head's CPU flamegraphs side by side
    # (relative to the gate's folder), or why there is none.
    flamegraphs: str | None = None
    flamegraph_note: str | None = None

    @property
    def ratios(self) -> list[float]:
        return [r.ratio for r in self.rounds if r.ratio is not None]

    @property
    def problems(self) -> list[str]:
        found = []
        for r in self.rounds:
            for side, m in (("base", r.base), ("head", r.head)):
                if m.problem is not None:
                    found.append(f"{side} round {r.number}: {m.problem} (log: {m.log})")
        return found

    def ratio_spread(self) -> Spread | None:
        return spread(self.ratios) if self.ratios else None

    def side_median(self, side: Side) -> float | None:
        field = "instructions_per_token" if self.measure == "instructions" else "throughput"
        figures = [getattr(getattr(r, side), field) for r in self.rounds if r.ratio is not None]
        return median(figures) if figures else None

    def verdict(self, min_ratio: float,
                max_instruction_ratio: float = 1.0 + DEFAULT_MAX_GROWTH_PCT / 100) -> Verdict:
        if self.not_compared is not None:
            return "not compared"
        ratios = self.ratio_spread()
        if self.problems or ratios is None:
            return "failed"
        if self.measure == "instructions":
            return "regression" if ratios.median > max_instruction_ratio else "ok"
        return "regression" if ratios.median < min_ratio else "ok"


@dataclass(frozen=True, kw_only=True)
class AbReport:
    options: AbOptions
    revisions: Mapping[Side, Revision]
    comparisons: tuple[ScenarioRounds, ...]
    interrupted: bool = False
    notes: tuple[str, ...] = ()  # about the whole gate, e.g. why counts were not taken

    def verdict(self, comparison: ScenarioRounds) -> Verdict:
        return comparison.verdict(self.options.min_ratio, self.options.max_instruction_ratio)

    def verdicts(self) -> dict[str, Verdict]:
        return {c.name: self.verdict(c) for c in self.comparisons}

    def with_verdict(self, verdict: Verdict) -> list[ScenarioRounds]:
        return [c for c in self.comparisons if self.verdict(c) == verdict]

    @property
    def exit_code(self) -> ExitCode:
        verdicts = set(self.verdicts().values())
        if "regression" in verdicts:
            return ExitCode.REGRESSION
        if "failed" in verdicts or self.interrupted:
            return ExitCode.CRASHED_OR_HUNG
        return ExitCode.PASSED
