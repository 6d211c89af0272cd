"""The typed records the parent and the scenario child exchange, validated on both sides.

Three records cross the process boundary as JSON: the child's :class:`ChildSpec` (what to
run), one :class:`Sample` line per sampling interval (so a killed child still leaves its
counts behind) and the final :class:`ChildFigures`. Each carries ``version``; a record of
another version, a missing key or a value of the wrong type is a :class:`ProtocolError`
naming the key, never a half-built object.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args

from stress.config.scenario import Scenario, Thresholds
from stress.engine.leftovers import Leftovers
from stress.errors import EngineError
from stress.histogram import LatencySummary
from stress.stream_report import Divergence, StreamReport

# 2: ChildFigures carries the verifier's StreamReport ("streams").
PROTOCOL_VERSION = 3

# The child's phases, in order: starting (interpreter and target import), the target's setup
# (and warm-up), the measured run, quit under load, the target's teardown, done. The samples
# file says which one the child is in.
Phase = Literal["start", "setup", "run", "quit", "teardown", "done"]
PHASES: tuple[Phase, ...] = get_args(Phase)
Loop = Literal["asyncio", "uvloop"]
LOOPS: tuple[Loop, ...] = get_args(Loop)


class ProtocolError(EngineError):
    """A record from the other side of the child boundary is malformed."""


def _take(data: dict[str, Any], key: str, kind: type | tuple[type, ...], record: str) -> Any:
    """``data[key]``, checked against ``kind``: an int passes for a float (and becomes one), a
    bool passes only for a bool."""
    if key not in data:
        raise ProtocolError(f"{record}: missing key {key!r}")
    value = data[key]
    kinds = kind if isinstance(kind, tuple) else (kind,)
    accepted = (*kinds, int) if float in kinds and int not in kinds else kinds
    if (isinstance(value, bool) and bool not in kinds) or not isinstance(value, accepted):
        raise ProtocolError(f"{record}: {key!r} is {value!r} ({type(value).__name__}), "
                            f"expected {_names(kinds)}")
    if float in kinds and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


def _names(kinds: tuple[type, ...]) -> str:
    return " or ".join("null" if k is type(None) else k.__name__ for k in kinds)


def _load(text: str, record: str) -> dict[str, Any]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ProtocolError(f"{record}: not JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise ProtocolError(f"{record}: expected a JSON object, got {type(data).__name__}")
    version = data.get("version")
    if version != PROTOCOL_VERSION:
        raise ProtocolError(f"{record}: protocol version {version!r}, this kit speaks "
                            f"{PROTOCOL_VERSION}")
    return data


_NONE = type(None)
# The JSON type of each field annotation the records and Scenario use (annotations are
# strings here: every module involved uses ``from __future__ import annotations``).
_KINDS: dict[str, type | tuple[type, ...]] = {
    "str": str, "int": int, "float": float, "bool": bool,
    "float | None": (float, _NONE), "str | None": (str, _NONE), "int | None": (int, _NONE),
}


def _typed_fields(cls: type, data: dict[str, Any], record: str,
                  skip: tuple[str, ...] = ()) -> dict[str, Any]:
    fields = dataclasses.fields(cls)
    unknown = set(data) - {f.name for f in fields} - {"version"}
    if unknown:
        raise ProtocolError(f"{record}: unknown key {sorted(unknown)[0]!r}")
    return {f.name: _take(data, f.name, _KINDS[str(f.type)], record)
            for f in fields if f.name not in skip}


def scenario_from_dict(data: object) -> Scenario:
    """A Scenario from its dict, every field's type checked (Scenario.from_dict checks none)."""
    if not isinstance(data, dict):
        raise ProtocolError("spec: 'scenario' is not an object")
    thresholds = _take(data, "thresholds", dict, "spec.scenario")
    ignore = _take(data, "ignore_tasks", list, "spec.scenario")
    if not all(isinstance(p, str) for p in ignore):
        raise ProtocolError("spec.scenario: 'ignore_tasks' must be a list of strings")
    fields = _typed_fields(Scenario, data, "spec.scenario", skip=("thresholds", "ignore_tasks"))
    return Scenario(**fields, ignore_tasks=tuple(ignore), thresholds=Thresholds(
        **_typed_fields(Thresholds, thresholds, "spec.scenario.thresholds")))


@dataclass(frozen=True, kw_only=True)
class ChildSpec:
    """What one child runs: the parent writes it, ``python -m stress.engine.child`` reads it."""

    scenario: Scenario
    target: str  # module:attr
    loop: Loop
    samples_path: Path
    result_path: Path
    sample_interval_s: float
    measure_quit: bool

    def to_json(self) -> str:
        return json.dumps({
            "version": PROTOCOL_VERSION, "scenario": self.scenario.to_dict(),
            "target": self.target, "loop": self.loop, "samples_path": str(self.samples_path),
            "result_path": str(self.result_path), "sample_interval_s": self.sample_interval_s,
            "measure_quit": self.measure_quit,
        })

    @classmethod
    def from_json(cls, text: str) -> ChildSpec:
        data = _load(text, "spec")
        loop = _take(data, "loop", str, "spec")
        if loop not in LOOPS:
            raise ProtocolError(f"spec: 'loop' is {loop!r}, expected one of {', '.join(LOOPS)}")
        return cls(
            scenario=scenario_from_dict(_take(data, "scenario", dict, "spec")),
            target=_take(data, "target", str, "spec"), loop=loop,
            samples_path=Path(_take(data, "samples_path", str, "spec")),
            result_path=Path(_take(data, "result_path", str, "spec")),
            sample_interval_s=float(_take(data, "sample_interval_s", float, "spec")),
            measure_quit=_take(data, "measure_quit", bool, "spec"),
        )


@dataclass(frozen=True, kw_only=True)
class Sample:
    """One line of the samples file: the target's counters and the RSS at ``t``."""

    phase: Phase
    t: float  # seconds since the current phase's run started
    rss_mb: float
    messages_sent: int
    tokens_received: int
    streams_completed: int
    errors: int
    # The target makes or hands back its tokens through the harness: the counts above are
    # the verifier's, also when the run never finishes and no stream report comes.
    verified: bool = False

    def to_json(self) -> str:
        # A shallow dict: every field is a plain value, and asdict's deep copy would be most
        # of the cost of a sample (the loop writes ten a second).
        return json.dumps({"version": PROTOCOL_VERSION,
                           **{f.name: getattr(self, f.name) for f in dataclasses.fields(self)}})

    @classmethod
    def from_json(cls, text: str) -> Sample:
        data = _load(text, "sample")
        phase = _take(data, "phase", str, "sample")
        if phase not in PHASES:
            raise ProtocolError(f"sample: 'phase' is {phase!r}, expected one of "
                                f"{', '.join(PHASES)}")
        fields = _typed_fields(cls, data, "sample", skip=("phase",))
        return cls(phase=phase, **fields)


@dataclass(frozen=True, kw_only=True)
class RunFigures:
    """The measured run: the target's final counters, its duration and the RSS around it."""

    duration_s: float
    messages_sent: int
    tokens_received: int
    streams_completed: int
    errors: int
    rss_start_mb: float = 0.0
    rss_end_mb: float = 0.0
    peak_rss_mb: float = 0.0
    # Counters the target set to something other than a whole number ("name=value").
    odd_counters: tuple[str, ...] = ()


@dataclass(frozen=True, kw_only=True)
class QuitFigures:
    """Quit under load, a second run of the target apart from the measured one."""

    latency_ms: float | None  # None: the stream ended before quit could be requested
    note: str | None = None  # why it was not measured
    tokens_before: int = 0  # tokens received when quit was requested
    pending: tuple[str, ...] = ()  # reprs of the tasks still pending after run() returned


@dataclass(frozen=True, kw_only=True)
class ChildFigures:
    """The child's final word: its measured run and quit figures, or the target's error."""

    run: RunFigures | None = None
    quit: QuitFigures | None = None
    error: str | None = None  # "ValueError: ..." when the target raised
    setup_error: str | None = None  # setup (or warm-up) raised: nothing was measured
    teardown_error: str | None = None  # teardown raised, after the figures above
    leftovers: tuple[Leftovers, ...] = ()  # what was still alive at each checkpoint
    streams: StreamReport | None = None  # what the verifier saw in the measured run

    @property
    def finished(self) -> bool:
        return self.run is not None and self.error is None

    def to_json(self) -> str:
        quit_ = None if self.quit is None else {**dataclasses.asdict(self.quit),
                                                "pending": list(self.quit.pending)}
        return json.dumps({
            "version": PROTOCOL_VERSION,
            "run": None if self.run is None else {**dataclasses.asdict(self.run),
                                                  "odd_counters": list(self.run.odd_counters)},
            "quit": quit_, "error": self.error, "setup_error": self.setup_error,
            "teardown_error": self.teardown_error,
            "leftovers": [record.to_dict() for record in self.leftovers],
            "streams": None if self.streams is None else dataclasses.asdict(self.streams),
        })

    @classmethod
    def from_json(cls, text: str) -> ChildFigures:
        data = _load(text, "figures")
        run = _take(data, "run", (dict, _NONE), "figures")
        quit_ = _take(data, "quit", (dict, _NONE), "figures")
        return cls(
            run=None if run is None else _run_from(run),
            quit=None if quit_ is None else _quit_from(quit_),
            error=_take(data, "error", (str, _NONE), "figures"),
            setup_error=_take(data, "setup_error", (str, _NONE), "figures"),
            teardown_error=_take(data, "teardown_error", (str, _NONE), "figures"),
            leftovers=tuple(Leftovers.from_dict(record)
                            for record in _take(data, "leftovers", list, "figures")),
            streams=_streams_from(_take(data, "streams", (dict, _NONE), "figures")),
        )


def _strings(data: dict[str, Any], key: str, record: str) -> tuple[str, ...]:
    values = _take(data, key, list, record)
    if not all(isinstance(v, str) for v in values):
        raise ProtocolError(f"{record}: {key!r} must be a list of strings")
    return tuple(values)


def _run_from(data: dict[str, Any]) -> RunFigures:
    odd = _strings(data, "odd_counters", "figures.run")
    return RunFigures(**_typed_fields(RunFigures, data, "figures.run", skip=("odd_counters",)),
                      odd_counters=odd)


def _quit_from(data: dict[str, Any]) -> QuitFigures:
    pending = _take(data, "pending", list, "figures.quit")
    if not all(isinstance(p, str) for p in pending):
        raise ProtocolError("figures.quit: 'pending' must be a list of strings")
    fields = _typed_fields(QuitFigures, data, "figures.quit", skip=("pending",))
    return QuitFigures(**fields, pending=tuple(pending))


def _latency_from(data: object, record: str) -> LatencySummary:
    if not isinstance(data, dict):
        raise ProtocolError(f"{record}: expected an object")
    buckets = _take(data, "buckets", list, record)
    if not all(isinstance(b, list) and len(b) == 2 and isinstance(b[0], int | float)
               and isinstance(b[1], int) for b in buckets):
        raise ProtocolError(f"{record}: 'buckets' must be a list of [ms, count] pairs")
    fields = _typed_fields(LatencySummary, data, record, skip=("buckets",))
    return LatencySummary(**fields, buckets=tuple((float(ms), n) for ms, n in buckets))


def _streams_from(data: dict[str, Any] | None) -> StreamReport | None:
    if data is None:
        return None
    record = "figures.streams"
    divergence = _take(data, "first_divergence", (dict, _NONE), record)
    fields = _typed_fields(StreamReport, data, record,
                           skip=("first_divergence", "latency", "ttft"))
    return StreamReport(
        **fields,
        first_divergence=None if divergence is None else Divergence(
            **_typed_fields(Divergence, divergence, record + ".first_divergence")),
        latency=_latency_from(_take(data, "latency", dict, record), record + ".latency"),
        ttft=_latency_from(_take(data, "ttft", dict, record), record + ".ttft"),
    )
