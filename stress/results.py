"""What a scenario run measured and how it was judged; the results.json schema."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal

from stress.config.scenario import Scenario
from stress.errors import ExitCode
from stress.verifier_build import VerifierBuild

RESULTS_VERSION = 1

# "not_run": the run was interrupted before this scenario started; it has no figures at all.
Status = Literal["passed", "failed", "timeout", "crashed", "interrupted", "not_run"]
# The statuses of a scenario that did not run to its end: its figures are not a measurement.
UNFINISHED_STATUSES: frozenset[Status] = frozenset({"timeout", "crashed", "interrupted",
                                                    "not_run"})
NOT_RUN_MESSAGE = "not run (interrupted)"
# The start of the note a profile that was asked for and not written leaves (summary.md lists
# these notes on their own).
MISSING_PROFILE_NOTE = "Missing profile:"


@dataclass(frozen=True, kw_only=True)
class Metrics:
    messages_sent: int = 0
    tokens_received: int = 0
    streams_completed: int = 0
    errors: int = 0
    duration_s: float = 0.0
    throughput: float = 0.0  # tokens received per second
    memory_growth_mb: float = 0.0  # RSS at end minus RSS at start
    peak_rss_mb: float = 0.0
    quit_latency_ms: float | None = None  # quit requested under load -> run() returned
    loss_pct: float = 0.0  # (sent - received) / sent
    leaked_mb: float | None = None  # memray: bytes still allocated at exit
    # The stream as the harness verified it (stress.streams); all zero/None for a target that
    # only reports counters (verified False: its counts are the target's word).
    verified: bool = False
    lost: int = 0  # tokens made that never arrived
    duplicated: int = 0
    reordered: int = 0  # arrived, but after a later token of their conversation
    corrupted: int = 0
    ended_short: int = 0  # streams ended before their last token
    unexpected_failures: int = 0  # conversations failed where no failure was injected
    unreported_failures: int = 0  # injected failures the target did not report
    first_divergence: str | None = None  # e.g. "conversation 3, token 1200: duplicated ..."
    latency_p50_ms: float | None = None  # token made -> token received
    latency_p95_ms: float | None = None
    latency_p99_ms: float | None = None
    latency_max_ms: float | None = None
    ttft_p50_ms: float | None = None  # a conversation's first token: made -> received
    ttft_max_ms: float | None = None
    max_gap_ms: float | None = None  # longest wait between two tokens of one conversation
    memory_growth_per_1k_tokens_mb: float | None = None
    # valgrind's count with start-up and imports taken out (run --measure instructions)
    instructions_per_token: float | None = None
    memory_slope_mb_per_min: float | None = None  # soak runs: fitted after the warm-up


@dataclass(frozen=True, kw_only=True)
class Sample:
    """One point of the time series taken while the scenario ran."""

    t_s: float  # seconds since the measured run started
    rss_mb: float
    tokens: int  # tokens received so far


@dataclass(frozen=True, kw_only=True)
class Check:
    """One threshold and its verdict, computed once by the judge; reporters only render it."""

    metric: str  # the Metrics field judged, e.g. "throughput", "memory_growth_mb"
    label: str  # e.g. "Throughput"
    limit: float
    value: float | None  # None: not measured (the run did not finish, or no profile)
    better: Literal["higher", "lower"]
    met: bool | None  # None: not measured


@dataclass(frozen=True, kw_only=True)
class Failure:
    """One failed check, worded as the seed document words it."""

    kind: Literal["timeout", "loss", "memory", "throughput", "quit_latency", "crash",
                  "leak", "streams", "interrupted",
                  "setup", "teardown", "leftover", "exit", "pacing",
                  "verification", "errors", "counters", "latency"]
    message: str  # e.g. "Message loss too high: 15.43% (sent: 100000, received: 84570)"
    headline: str  # e.g. "FAILURE: Significant message loss under backpressure"
    diagnosis: tuple[str, ...] = ()
    # What a profiler found, verbatim (memray's leak report: sites with their stacks indented
    # below); reports show it in place of the generic diagnosis.
    evidence: str | None = None


@dataclass(frozen=True, kw_only=True)
class Environment:
    python: str
    implementation: str
    platform: str
    cpu_count: int
    git_sha: str | None
    in_container: bool
    target: str
    loop: str = "asyncio"
    # git_sha above is the measured project's commit; these say which project and which kit.
    project_name: str | None = None
    project_version: str | None = None
    kit_version: str | None = None
    image_id: str | None = None  # the container run's image (None on the host)
    # Which build of the verifier ran: same verdicts, not the same speed.
    verifier: VerifierBuild | None = None


@dataclass(frozen=True, kw_only=True)
class Result:
    scenario: Scenario
    status: Status
    metrics: Metrics
    failures: tuple[Failure, ...] = ()
    samples: tuple[Sample, ...] = ()
    environment: Environment | None = None
    # Files in the results folder, by role, relative to it: "log", "memray_flamegraph",
    # "memray_leaks", "memray_stats", "leak_report", "cpu_flamegraph", "cpu_speedscope", ...
    artifacts: dict[str, str] = field(default_factory=dict)
    notes: tuple[str, ...] = ()  # e.g. "py-spy could not attach: ..."
    repeats: int = 1
    checks: tuple[Check, ...] = ()  # every threshold of the scenario with its verdict
    # Token latency histogram of the measured run: (bucket upper bound in ms, tokens), for plots.
    latency_histogram: tuple[tuple[float, int], ...] = ()
    # A SIGINT/SIGTERM stopped the run while this scenario was handled (its measured run, or a
    # profiling run after it: then its verdict stands, but the run as a whole was interrupted).
    interrupted: bool = False

    @property
    def passed(self) -> bool:
        return self.status == "passed"

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["name"] = self.scenario.name
        data["passed"] = self.passed
        data["thresholds"] = data["scenario"]["thresholds"]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Result:
        env = data.get("environment")
        return cls(
            scenario=Scenario.from_dict(data["scenario"]),
            status=data["status"],
            metrics=Metrics(**data["metrics"]),
            failures=tuple(
                Failure(**{**f, "diagnosis": tuple(f.get("diagnosis", ()))})
                for f in data.get("failures", ())
            ),
            samples=tuple(Sample(**s) for s in data.get("samples", ())),
            environment=Environment(**env) if env else None,
            artifacts=dict(data.get("artifacts", {})),
            notes=tuple(data.get("notes", ())),
            repeats=int(data.get("repeats", 1)),
            checks=tuple(Check(**c) for c in data.get("checks", ())),
            latency_histogram=tuple((float(ms), int(n))
                                    for ms, n in data.get("latency_histogram", ())),
            interrupted=bool(data.get("interrupted", False)),
        )


def results_document(results: list[Result]) -> dict[str, Any]:
    return {"version": RESULTS_VERSION, "scenarios": [r.to_dict() for r in results]}


def parse_results_document(data: dict[str, Any]) -> list[Result]:
    version = data.get("version")
    if version != RESULTS_VERSION:
        raise ValueError(f"unsupported results.json version {version!r} "
                         f"(this kit reads version {RESULTS_VERSION})")
    return [Result.from_dict(entry) for entry in data["scenarios"]]


@dataclass(frozen=True)
class ThresholdRule:
    """How one threshold judges one figure."""

    limit: str  # the Thresholds field
    metric: str  # the Metrics field it judges
    label: str
    better: Literal["higher", "lower"]


# In the seed's order of importance. Reaching a limit fails (a throughput must be above its
# minimum, the others below their maximum), except that a maximum of 0 means "none allowed"
# and passes at exactly 0.
THRESHOLD_RULES = (
    ThresholdRule("max_loss_pct", "loss_pct", "Message loss", "lower"),
    ThresholdRule("max_memory_growth_mb", "memory_growth_mb", "Memory growth", "lower"),
    ThresholdRule("min_throughput", "throughput", "Throughput", "higher"),
    ThresholdRule("max_quit_latency_ms", "quit_latency_ms", "Quit latency", "lower"),
    ThresholdRule("max_leaked_mb", "leaked_mb", "Leaked at exit", "lower"),
    ThresholdRule("max_p99_latency_ms", "latency_p99_ms", "Token latency p99", "lower"),
    ThresholdRule("max_ttft_ms", "ttft_max_ms", "Time to first token", "lower"),
    ThresholdRule("max_gap_ms", "max_gap_ms", "Longest gap between tokens", "lower"),
    ThresholdRule("max_memory_slope_mb_per_min", "memory_slope_mb_per_min",
                  "Memory slope after warm-up", "lower"),
)


def meets(value: float, limit: float, better: Literal["higher", "lower"]) -> bool:
    if better == "higher":
        return value > limit
    return value < limit or (limit == 0 and value == 0)


def threshold_checks(scenario: Scenario, metrics: Metrics, status: Status) -> tuple[Check, ...]:
    """Every threshold the scenario sets with its verdict: the one place a verdict is computed.

    A value that was not measured has no verdict: quit latency when no quit was requested,
    leaked memory without a memray run, and every figure of a run that did not finish (what it
    had done when it stopped is not a measurement: tokens still in the channel were in flight,
    not lost).
    """
    finished = status not in UNFINISHED_STATUSES
    checks = []
    for rule in THRESHOLD_RULES:
        limit: float | None = getattr(scenario.thresholds, rule.limit)
        if limit is None:
            continue
        value: float | None = getattr(metrics, rule.metric) if finished else None
        met = None if value is None else meets(value, limit, rule.better)
        checks.append(Check(metric=rule.metric, label=rule.label, limit=limit, value=value,
                            better=rule.better, met=met))
    return tuple(checks)


def checks_of(result: Result) -> tuple[Check, ...]:
    """The judge's checks; derived from the thresholds for results that predate them."""
    if result.checks:
        return result.checks
    return threshold_checks(result.scenario, result.metrics, result.status)


def find_match(result: Result, candidates: list[Result]) -> Result | None:
    """The candidate for the same scenario: same name, else same title (case-insensitive)."""
    for candidate in candidates:
        if candidate.scenario.name == result.scenario.name:
            return candidate
    title = result.scenario.title.casefold()
    for candidate in candidates:
        if candidate.scenario.title.casefold() == title:
            return candidate
    return None


def measured_throughput(result: Result) -> float | None:
    """None when the run measured nothing (no duration): there is no figure to compare."""
    m = result.metrics
    if m.duration_s <= 0 and m.throughput <= 0:
        return None
    return m.throughput


def not_run_result(scenario: Scenario, environment: Environment | None = None) -> Result:
    """The Result of a scenario an interrupt kept from starting."""
    return Result(scenario=scenario, status="not_run", metrics=Metrics(), environment=environment,
                  failures=(Failure(kind="interrupted", message=NOT_RUN_MESSAGE,
                                    headline="FAILURE: Scenario not run: the run was "
                                             "interrupted before it started"),),
                  interrupted=True)


def was_interrupted(results: list[Result]) -> bool:
    return any(r.interrupted or r.status in ("interrupted", "not_run") for r in results)


def overall_exit_code(results: list[Result]) -> ExitCode:
    """The run's exit code: an interrupt, crash or hang outranks a failed threshold."""
    if was_interrupted(results) or any(r.status in UNFINISHED_STATUSES for r in results):
        return ExitCode.CRASHED_OR_HUNG
    if any(not r.passed for r in results):
        return ExitCode.THRESHOLD_FAILED
    return ExitCode.PASSED
