"""scenarios.yaml -> validated Scenario objects, with one-line errors a user can act on."""

from __future__ import annotations

import dataclasses
import difflib
import math
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from stress.errors import ConfigError
from stress.scenario import Scenario, Thresholds

BUILTIN_NAME = "stress/scenarios.yaml"

_INT_FIELDS = {"messages": 1, "message_size": 1, "channel_buffer": 1, "conversations": 1}
_FLOAT_FIELDS = {"token_delay_us": 0.0, "consumer_delay_us": 0.0, "error_rate": 0.0}
_SCENARIO_KEYS = {"title", *_INT_FIELDS, *_FLOAT_FIELDS, "timeout_s", "thresholds"}
_THRESHOLD_KEYS = {f.name for f in dataclasses.fields(Thresholds)}


def builtin_text() -> str:
    return resources.files("stress").joinpath("scenarios.yaml").read_text(encoding="utf-8")


def load_scenarios(path: Path | None = None) -> dict[str, Scenario]:
    """Load the built-in scenarios, or the user's file when ``path`` is given."""
    if path is None:
        return parse_scenarios(builtin_text(), source=BUILTIN_NAME)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read scenarios file ({exc.strerror})") from exc
    return parse_scenarios(text, source=str(path))


def parse_scenarios(text: str, *, source: str) -> dict[str, Scenario]:
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        line = f" line {where.line + 1}" if where is not None else ""
        raise ConfigError(f"{source}:{line} is not valid YAML; fix the syntax there") from exc
    if not isinstance(document, dict) or not isinstance(document.get("scenarios"), dict):
        raise ConfigError(
            f"{source}: expected a mapping with a 'scenarios' key holding one entry per scenario"
        )
    unknown_top = set(document) - {"version", "scenarios"}
    if unknown_top:
        raise ConfigError(f"{source}: unknown top-level key {sorted(unknown_top)[0]!r}; "
                          "allowed: 'version', 'scenarios'")
    if document.get("version", 1) != 1:
        raise ConfigError(f"{source}: key 'version' is {document['version']!r}; expected 1")
    if not document["scenarios"]:
        raise ConfigError(f"{source}: 'scenarios' is empty; define at least one scenario")
    return {
        str(name): _parse_scenario(str(name), entry, source)
        for name, entry in document["scenarios"].items()
    }


def _parse_scenario(name: str, entry: Any, source: str) -> Scenario:
    where = f"{source}: scenario {name!r}"
    if not name.replace("-", "").replace("_", "").isalnum():
        raise ConfigError(f"{where}: the name may hold only letters, digits, '-' and '_' "
                          "(it is used in file names)")
    if not isinstance(entry, dict):
        raise ConfigError(f"{where}: expected a mapping of keys, got {type(entry).__name__}")
    _reject_unknown(entry, _SCENARIO_KEYS, where)
    for key in ("title", "messages"):
        if key not in entry:
            raise ConfigError(f"{where}: key {key!r} is missing; it is required")
    title = entry["title"]
    if not isinstance(title, str) or not title.strip():
        raise ConfigError(f"{where}: key 'title' must be a non-empty string")
    fields: dict[str, Any] = {"name": name, "title": title}
    for key, minimum in _INT_FIELDS.items():
        if key in entry:
            fields[key] = _integer(entry[key], minimum, f"{where}: key {key!r}")
    for key, float_minimum in _FLOAT_FIELDS.items():
        if key in entry:
            fields[key] = _number(entry[key], float_minimum, f"{where}: key {key!r}")
    if fields.get("error_rate", 0.0) > 1.0:
        raise ConfigError(f"{where}: key 'error_rate' is {fields['error_rate']}; "
                          "expected a fraction from 0 to 1")
    if "timeout_s" in entry:
        fields["timeout_s"] = _number(entry["timeout_s"], 0.0, f"{where}: key 'timeout_s'")
        if fields["timeout_s"] == 0:
            raise ConfigError(f"{where}: key 'timeout_s' is 0; expected seconds > 0")
    fields["thresholds"] = _parse_thresholds(entry.get("thresholds", {}), where)
    return Scenario(**fields)


def _parse_thresholds(entry: Any, where: str) -> Thresholds:
    if entry is None:
        return Thresholds()
    if not isinstance(entry, dict):
        raise ConfigError(f"{where}: key 'thresholds' must be a mapping, "
                          f"got {type(entry).__name__}")
    _reject_unknown(entry, _THRESHOLD_KEYS, f"{where}: thresholds")
    values = {
        key: _number(value, 0.0, f"{where}: key 'thresholds.{key}'")
        for key, value in entry.items()
    }
    if values.get("max_loss_pct", 0.0) > 100:
        raise ConfigError(f"{where}: key 'thresholds.max_loss_pct' is "
                          f"{values['max_loss_pct']}; expected a percentage from 0 to 100")
    return Thresholds(**values)


def _reject_unknown(entry: dict[Any, Any], allowed: set[str], where: str) -> None:
    for key in entry:
        if key not in allowed:
            close = difflib.get_close_matches(str(key), sorted(allowed), n=1)
            allowed_list = ", ".join(sorted(allowed))
            hint = f"did you mean {close[0]!r}?" if close else f"allowed: {allowed_list}"
            raise ConfigError(f"{where}: unknown key {key!r}; {hint}")


def _integer(value: Any, minimum: int, what: str) -> int:
    # bool is an int subclass in Python; 'messages: yes' is a mistake, not 1.
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{what} is {value!r}; expected a whole number >= {minimum}")
    if value < minimum:
        raise ConfigError(f"{what} is {value}; expected a whole number >= {minimum}")
    return value


def _number(value: Any, minimum: float, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ConfigError(f"{what} is {value!r}; expected a number >= {minimum:g}")
    if value < minimum:
        raise ConfigError(f"{what} is {value}; expected a number >= {minimum:g}")
    return float(value)


def select(scenarios: dict[str, Scenario], names: list[str], source: str) -> list[Scenario]:
    """The scenarios named on the command line, in the order given (all when none)."""
    if not names:
        return list(scenarios.values())
    chosen = []
    for name in names:
        if name not in scenarios:
            close = difflib.get_close_matches(name, list(scenarios), n=1)
            hint = f"did you mean {close[0]!r}?" if close else \
                f"available: {', '.join(scenarios)}"
            raise ConfigError(f"{source}: no scenario named {name!r}; {hint}")
        chosen.append(scenarios[name])
    return chosen
