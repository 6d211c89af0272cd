"""Typed scenario configuration: what to run and what counts as passing.

The rules for each field (its type and range) live here, once: the scenarios file loader
(``stress.config``) and the child decoding its spec (``Scenario.from_dict``) both validate
through :func:`build_scenario`, so a scenario that reaches the engine is always a valid one.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import reprlib
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from stress.errors import ConfigError

MAX_NAME_LENGTH = 64  # names become file names and report headings
MAX_WHOLE = 10**12  # counts beyond this are typing errors, and would overflow float scaling


class ScenarioError(ConfigError):
    """A scenario's data breaks a field's rule; the message says which key and what is allowed."""


@dataclass(frozen=True, kw_only=True)
class Thresholds:
    """Pass criteria; ``None`` means the metric is reported but not judged."""

    min_throughput: float | None = None  # tokens/s
    max_memory_growth_mb: float | None = None
    max_quit_latency_ms: float | None = None
    max_loss_pct: float | None = None  # 0 is valid: no loss allowed
    max_leaked_mb: float | None = None  # judged only on a memray run
    max_p99_latency_ms: float | None = None  # token made -> received, 99th percentile
    max_ttft_ms: float | None = None  # time to first token, slowest conversation
    max_gap_ms: float | None = None  # longest wait between two tokens of one conversation
    # Soak runs (duration_s): RSS growth fitted over the samples after warmup_s, MB per minute.
    max_memory_slope_mb_per_min: float | None = None


@dataclass(frozen=True, kw_only=True)
class Scenario:
    """One stress scenario. Its field names are the YAML keys and what targets read."""

    name: str  # identifier used on the command line and in file names
    title: str  # the heading of the report block, e.g. "1M Short Messages"
    messages: int  # tokens per conversation
    message_size: int = 10  # characters per token
    token_delay_us: float = 0.0  # producer pacing per token
    channel_buffer: int = 100
    consumer_delay_us: float = 0.0  # consumer pacing per message
    conversations: int = 1
    error_rate: float = 0.0  # fraction of conversations whose backend fails mid-stream
    timeout_s: float = 60.0
    # A soak: every conversation streams for this many seconds (tokens keep coming until the
    # time is up, then the streams end) instead of ``messages`` tokens.
    duration_s: float | None = None
    warmup_s: float = 0.0  # a soak's memory slope is fitted over the samples after this
    scale: float = 1.0  # the --scale this copy was made with (``scaled`` sets it)
    thresholds: Thresholds = field(default_factory=Thresholds)
    # Lifecycle (stress.engine.lifecycle, stress.engine.leftovers):
    warmup_messages: int = 0  # a discarded run of this many tokens per conversation first
    ignore_tasks: tuple[str, ...] = ()  # fnmatch patterns of library tasks allowed to outlive

    @property
    def expected_tokens(self) -> int:
        return self.messages * self.conversations

    @property
    def loss_condition(self) -> str:
        """The condition under which this scenario looks for loss, as words after "loss"
        (the seed's are for its consumer-paced scenario: " under backpressure")."""
        if self.consumer_delay_us > 0:
            return " under backpressure"
        if self.error_rate > 0:
            return " under error injection"
        if self.conversations > 1:
            return " across concurrent conversations"
        return ""

    def scaled(self, factor: float) -> Scenario:
        """A copy with message counts multiplied by ``factor`` (at least one message), and
        the MB limits with them (:func:`scaled_memory_limit`): a leak that grows with the
        tokens stays visible in a quick run. A soak's duration is not scaled."""
        if factor == 1.0:
            return self
        limits = self.thresholds
        return dataclasses.replace(
            self, messages=max(1, round(self.messages * factor)), scale=self.scale * factor,
            thresholds=dataclasses.replace(
                limits,
                max_memory_growth_mb=scaled_memory_limit(limits.max_memory_growth_mb, factor),
                max_leaked_mb=scaled_memory_limit(limits.max_leaked_mb, factor)))

    def scaling_note(self) -> str | None:
        """What a report says about limits that were scaled with the run."""
        limits = self.thresholds
        scaled = [f"{name} {value:g} MB" for name, value in (
            ("max_memory_growth_mb", limits.max_memory_growth_mb),
            ("max_leaked_mb", limits.max_leaked_mb)) if value is not None]
        if self.scale == 1.0 or not scaled:
            return None
        return (f"Memory limits scaled with the run (--scale {self.scale:g}; never below "
                f"{MEMORY_FLOOR_FRACTION:.0%} of the limit or {MEMORY_FLOOR_MB:g} MB): "
                + ", ".join(scaled))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Scenario:
        """The inverse of ``to_dict``, validated: raises ScenarioError for any bad field."""
        if not isinstance(data, Mapping):
            raise ScenarioError(f"scenario data is {describe(data)}; expected a mapping")
        # exact: a number comes back as it was written (an int stays an int), so a
        # results.json read and written again is the same text.
        return build_scenario(data, where=f"scenario {describe(data.get('name'))}", exact=True)


# A scaled run's MB limits shrink with it, but never below this much of the written limit, nor
# below MEMORY_FLOOR_MB (a small run's figures are mostly interpreter noise under that).
MEMORY_FLOOR_FRACTION = 0.2
MEMORY_FLOOR_MB = 10.0


def scaled_memory_limit(limit: float | None, factor: float) -> float | None:
    if limit is None:
        return None
    floor = min(limit, max(limit * MEMORY_FLOOR_FRACTION, MEMORY_FLOOR_MB))
    return max(limit * factor, floor)


# Field tables derived from the dataclasses, so a new field needs no edit here.
_HINTS = typing.get_type_hints(Scenario)
INT_FIELDS = tuple(f.name for f in dataclasses.fields(Scenario) if _HINTS[f.name] is int)
FLOAT_FIELDS = tuple(f.name for f in dataclasses.fields(Scenario) if _HINTS[f.name] is float)
OPTIONAL_FLOAT_FIELDS = tuple(f.name for f in dataclasses.fields(Scenario)
                              if _HINTS[f.name] == float | None)
SCENARIO_KEYS = tuple(f.name for f in dataclasses.fields(Scenario))
REQUIRED_KEYS = tuple(f.name for f in dataclasses.fields(Scenario)
                      if f.default is dataclasses.MISSING
                      and f.default_factory is dataclasses.MISSING)
THRESHOLD_KEYS = tuple(f.name for f in dataclasses.fields(Thresholds))

_REPR = reprlib.Repr()
_REPR.maxstring = _REPR.maxother = 40
_REPR.maxlevel, _REPR.maxlist, _REPR.maxdict = 2, 3, 3


def describe(value: object) -> str:
    """A value for an error message: bounded in length however large the value is."""
    try:
        if isinstance(value, str | int | float | bool) or value is None:
            return _REPR.repr(value)
        return f"{type(value).__name__} {_REPR.repr(value)}"
    except ValueError:  # an int of more than 4,300 digits refuses repr()
        return f"{type(value).__name__} (too long to show)"


def build_scenario(data: Mapping[str, Any], *, where: str, exact: bool = False) -> Scenario:
    """A Scenario from plain values, every field checked; ``where`` starts each message.
    Numbers of float fields become floats unless ``exact``."""
    reject_unknown(data, SCENARIO_KEYS, where)
    for key in REQUIRED_KEYS:
        if key not in data:
            raise ScenarioError(f"{where}: key {key!r} is missing; it is required")
    fields: dict[str, Any] = {"name": check_name(data["name"], where)}
    title = data["title"]
    if not isinstance(title, str) or not title.strip():
        raise ScenarioError(f"{where}: key 'title' must be a non-empty string, "
                            f"got {describe(title)}")
    fields["title"] = title
    for key in INT_FIELDS:
        if key in data:
            minimum = 0 if key == "warmup_messages" else 1  # no warm-up is the default
            fields[key] = _integer(data[key], minimum, f"{where}: key {key!r}")
    if "ignore_tasks" in data:
        fields["ignore_tasks"] = _patterns(data["ignore_tasks"], f"{where}: key 'ignore_tasks'")
    for key in FLOAT_FIELDS:
        if key in data:
            fields[key] = _number(data[key], 0.0, f"{where}: key {key!r}", exact)
    for key in OPTIONAL_FLOAT_FIELDS:
        if data.get(key) is not None:
            fields[key] = _number(data[key], 0.0, f"{where}: key {key!r}", exact)
    _check_soak(fields, where)
    if fields.get("error_rate", 0.0) > 1.0:
        raise ScenarioError(f"{where}: key 'error_rate' is {fields['error_rate']}; "
                            "expected a fraction from 0 to 1")
    if fields.get("timeout_s") == 0:
        raise ScenarioError(f"{where}: key 'timeout_s' is 0; expected seconds > 0")
    fields["thresholds"] = build_thresholds(data.get("thresholds"), where, exact=exact)
    return Scenario(**fields)


def _check_soak(fields: dict[str, Any], where: str) -> None:
    duration = fields.get("duration_s")
    if duration is None:
        if fields.get("warmup_s"):
            raise ScenarioError(f"{where}: key 'warmup_s' needs 'duration_s' (a soak run)")
        return
    if duration == 0:
        raise ScenarioError(f"{where}: key 'duration_s' is 0; expected seconds > 0")
    if fields.get("warmup_s", 0.0) >= duration:
        raise ScenarioError(f"{where}: key 'warmup_s' is {fields['warmup_s']}; expected less "
                            f"than duration_s ({duration})")
    if fields.get("timeout_s", 60.0) <= duration:
        raise ScenarioError(f"{where}: key 'timeout_s' is {fields.get('timeout_s', 60.0)}; "
                            f"a soak needs longer than its duration_s ({duration})")


def build_thresholds(data: object, where: str, *, exact: bool = False) -> Thresholds:
    """Thresholds from a mapping; a key set to None (YAML ``null``) is not judged."""
    if data is None:
        return Thresholds()
    if not isinstance(data, Mapping):
        raise ScenarioError(f"{where}: key 'thresholds' must be a mapping, "
                            f"got {describe(data)}")
    reject_unknown(data, THRESHOLD_KEYS, f"{where}: thresholds")
    values = {
        key: None if value is None
        else _number(value, 0.0, f"{where}: key 'thresholds.{key}'", exact)
        for key, value in data.items()
    }
    loss = values.get("max_loss_pct")
    if loss is not None and loss > 100:
        raise ScenarioError(f"{where}: key 'thresholds.max_loss_pct' is {loss}; "
                            "expected a percentage from 0 to 100")
    return Thresholds(**values)


def _patterns(value: object, what: str) -> tuple[str, ...]:
    if isinstance(value, str) or not isinstance(value, list | tuple) \
            or not all(isinstance(p, str) and p for p in value):
        raise ScenarioError(f"{what} is {describe(value)}; expected a list of patterns such "
                            "as [\"sse_starlette.*\"]")
    return tuple(value)


def check_name(name: object, where: str) -> str:
    if not isinstance(name, str):
        raise ScenarioError(f"{where}: the name is {describe(name)}; names are text "
                            "(quote it in YAML)")
    if len(name) > MAX_NAME_LENGTH:
        raise ScenarioError(f"{where}: the name has {len(name)} characters; "
                            f"at most {MAX_NAME_LENGTH} are allowed")
    if not name.replace("-", "").replace("_", "").isalnum():
        raise ScenarioError(f"{where}: the name may hold only letters, digits, '-' and '_' "
                            "(it is used in file names)")
    return name


def reject_unknown(data: Mapping[Any, Any], allowed: tuple[str, ...], where: str) -> None:
    for key in data:
        if key not in allowed:
            close = difflib.get_close_matches(str(key), sorted(allowed), n=1)
            hint = f"did you mean {close[0]!r}?" if close else \
                f"allowed: {', '.join(sorted(allowed))}"
            raise ScenarioError(f"{where}: unknown key {describe(key)}; {hint}")


def _integer(value: object, minimum: int, what: str) -> int:
    # bool is an int subclass in Python; 'messages: yes' is a mistake, not 1.
    if isinstance(value, bool) or not isinstance(value, int):
        raise ScenarioError(f"{what} is {describe(value)}; expected a whole number >= {minimum}"
                            f"{_text_number_hint(value)}")
    if value < minimum:
        raise ScenarioError(f"{what} is {value}; expected a whole number >= {minimum}")
    if value > MAX_WHOLE:
        raise ScenarioError(f"{what} is {describe(value)}; expected a whole number from "
                            f"{minimum} to {MAX_WHOLE:,}")
    return value


def _number(value: object, minimum: float, what: str, exact: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ScenarioError(f"{what} is {describe(value)}; expected a number >= {minimum:g}"
                            f"{_text_number_hint(value)}")
    if not math.isfinite(value):
        raise ScenarioError(f"{what} is {value}; expected a finite number >= {minimum:g}")
    if value < minimum:
        raise ScenarioError(f"{what} is {value}; expected a number >= {minimum:g}")
    return value if exact else float(value)


def _text_number_hint(value: object) -> str:
    """YAML 1.1 (PyYAML) reads ``1e12`` and ``1.5e6`` as text: say so, and how to write them."""
    if not isinstance(value, str):
        return ""
    try:
        number = float(value)
    except ValueError:
        return ""
    if not math.isfinite(number):
        return ""
    written = str(int(number)) if number.is_integer() and abs(number) < 1e18 else repr(number)
    return (f" (YAML 1.1 reads {describe(value)} as text: an exponent needs a dot and a sign, "
            f"as in 1.0e+12; or write the number out: {written})")
