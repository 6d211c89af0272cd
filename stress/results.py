"""What a scenario run measured and how it was judged; the results.json schema."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal

from stress.errors import ExitCode
from stress.scenario import Scenario

RESULTS_VERSION = 1

Status = Literal["passed", "failed", "timeout", "crashed", "interrupted"]
# The statuses of a scenario that did not run to its end: its figures are not a measurement.
UNFINISHED_STATUSES: frozenset[Status] = frozenset({"timeout", "crashed", "interrupted"})


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
                  "leak", "streams", "interrupted"]
    message: str  # e.g. "Message loss too high: 15.43% (sent: 100000, received: 84570)"
    headline: str  # e.g. "FAILURE: Significant message loss under backpressure"
    diagnosis: tuple[str, ...] = ()
    evidence: str | None = None  # e.g. memray's leak report, for the reports to show


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
        )


def results_document(results: list[Result]) -> dict[str, Any]:
    return {"version": RESULTS_VERSION, "scenarios": [r.to_dict() for r in results]}


def parse_results_document(data: dict[str, Any]) -> list[Result]:
    version = data.get("version")
    if version != RESULTS_VERSION:
        raise ValueError(f"unsupported results.json version {version!r} "
                         f"(this kit reads version {RESULTS_VERSION})")
    return [Result.from_dict(entry) for entry in data["scenarios"]]


def overall_exit_code(results: list[Result]) -> ExitCode:
    """The run's exit code: a crash or hang outranks a failed threshold."""
    if any(r.status in UNFINISHED_STATUSES for r in results):
        return ExitCode.CRASHED_OR_HUNG
    if any(not r.passed for r in results):
        return ExitCode.THRESHOLD_FAILED
    return ExitCode.PASSED
