"""scenarios.yaml -> validated Scenario objects, with one-line errors a user can act on.

A scenarios file either defines its own set::

    version: 1
    scenarios:
      tiny: {title: Tiny, messages: 1000}

or changes the built-in set, naming only what it changes (``extends: builtin``)::

    version: 1
    extends: builtin
    scenarios:
      short:                      # a built-in: only the keys given change
        thresholds: {min_throughput: 2000, max_memory_growth_mb: null}   # null: not judged
      soak:                       # not a built-in: a new scenario, title and messages needed
        title: Soak
        messages: 5000000

With ``extends``, every built-in not named stays as it is, in its order, and new scenarios
follow in the file's order. The project config's ``[tool.stress.scenarios]`` table has the
same shape and goes through :func:`apply_overrides` too.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from stress.config import strict_yaml
from stress.config.scenario import (
    SCENARIO_KEYS,
    Scenario,
    build_scenario,
    check_name,
    describe,
    reject_unknown,
)
from stress.errors import ConfigError

BUILTIN_NAME = "stress/scenarios.yaml"
EXTENDS_KEY = "extends"
EXTENDS_BUILTIN = "builtin"  # the one value ``extends`` takes today
TOP_LEVEL_KEYS = ("version", EXTENDS_KEY, "scenarios")
ENTRY_KEYS = tuple(key for key in SCENARIO_KEYS if key != "name")  # the name is the entry's key


def builtin_text() -> str:
    return resources.files("stress").joinpath("scenarios.yaml").read_text(encoding="utf-8")


def load_scenarios(path: Path | None = None) -> dict[str, Scenario]:
    """Load the built-in scenarios, or the user's file when ``path`` is given."""
    if path is None:
        return parse_scenarios(builtin_text(), source=BUILTIN_NAME)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read scenarios file ({exc.strerror})") from None
    return parse_scenarios(strict_yaml.decode(data, str(path)), source=str(path))


def parse_scenarios(text: str, *, source: str) -> dict[str, Scenario]:
    return scenarios_from_document(strict_yaml.load(text, source), source=source)


def scenarios_from_document(document: object, *, source: str) -> dict[str, Scenario]:
    """The scenarios of a parsed file (a mapping with ``scenarios``, maybe ``extends``)."""
    if not isinstance(document, dict) or not isinstance(document.get("scenarios", {}), dict) \
            or ("scenarios" not in document and EXTENDS_KEY not in document):
        raise ConfigError(
            f"{source}: expected a mapping with a 'scenarios' key holding one entry per scenario"
        )
    for key in document:
        if key not in TOP_LEVEL_KEYS:
            close = difflib.get_close_matches(str(key), TOP_LEVEL_KEYS, n=1)
            hint = f"did you mean {close[0]!r}?" if close else \
                f"allowed: {', '.join(map(repr, TOP_LEVEL_KEYS))}"
            raise ConfigError(f"{source}: unknown top-level key {describe(key)}; {hint}")
    version = document.get("version", 1)
    if isinstance(version, bool) or version != 1:
        raise ConfigError(f"{source}: key 'version' is {describe(version)}; expected 1")
    entries: dict[str, Any] = document.get("scenarios") or {}
    if EXTENDS_KEY in document:
        if document[EXTENDS_KEY] != EXTENDS_BUILTIN:
            raise ConfigError(f"{source}: key {EXTENDS_KEY!r} is "
                              f"{describe(document[EXTENDS_KEY])}; expected "
                              f"{EXTENDS_BUILTIN!r} (the built-in scenarios), or leave it out "
                              "to define the whole set here")
        return apply_overrides(load_scenarios(None), entries, source=source)
    if not entries:
        raise ConfigError(f"{source}: 'scenarios' is empty; define at least one scenario "
                          f"(or add '{EXTENDS_KEY}: {EXTENDS_BUILTIN}' to keep the built-ins)")
    return {name: _new_scenario(name, entry, f"{source}: scenario {describe(name)}")
            for name, entry in entries.items()}


def apply_overrides(base: Mapping[str, Scenario], entries: Mapping[str, Any], *,
                    source: str) -> dict[str, Scenario]:
    """``base`` with each entry applied: a named scenario changes only the keys given
    (``thresholds`` key by key, ``null`` to stop judging one); another name adds a scenario.
    ``base`` itself is not changed; its order is kept and new scenarios come last."""
    if not isinstance(entries, Mapping):
        raise ConfigError(f"{source}: 'scenarios' must be a mapping of scenario names, "
                          f"got {describe(entries)}")
    result = dict(base)
    for name, entry in entries.items():
        where = f"{source}: scenario {describe(name)}"
        check_name(name, where)
        if name not in base:
            _require_full(name, entry, base, where)
            result[name] = _new_scenario(name, entry, where)
            continue
        merged = base[name].to_dict()
        changes = dict(_check_entry(entry, where))
        if "thresholds" in changes:
            limits = changes.pop("thresholds")
            if limits is not None and not isinstance(limits, Mapping):
                raise ConfigError(f"{where}: key 'thresholds' must be a mapping, "
                                  f"got {describe(limits)}")
            merged["thresholds"] = {**merged["thresholds"], **(limits or {})}
        result[name] = build_scenario({**merged, **changes}, where=where)
    return result


def _new_scenario(name: str, entry: object, where: str) -> Scenario:
    check_name(name, where)
    return build_scenario({**_check_entry(entry, where), "name": name}, where=where)


def _check_entry(entry: object, where: str) -> Mapping[str, Any]:
    if not isinstance(entry, Mapping):
        raise ConfigError(f"{where}: expected a mapping of keys, got {describe(entry)}")
    reject_unknown(entry, ENTRY_KEYS, where)
    return entry


def _require_full(name: str, entry: object, base: Mapping[str, Scenario], where: str) -> None:
    """A name that is not in ``base`` is a new scenario: without a title and a size it is more
    likely a misspelt one, so say which."""
    if not isinstance(entry, Mapping) or ("title" in entry and "messages" in entry):
        return
    close = difflib.get_close_matches(name, list(base), n=1)
    if close:
        raise ConfigError(f"{where}: no such scenario to change; did you mean {close[0]!r}? "
                          "(a new scenario needs 'title' and 'messages')")


def select(scenarios: Mapping[str, Scenario], names: Sequence[str],
           source: str) -> list[Scenario]:
    """The scenarios named on the command line, in the order given (all when none)."""
    if not names:
        return list(scenarios.values())
    chosen = []
    for name in names:
        if name not in scenarios:
            close = difflib.get_close_matches(name, list(scenarios), n=1)
            hint = f"did you mean {close[0]!r}?" if close else \
                f"available: {', '.join(scenarios)}"
            raise ConfigError(f"{source}: no scenario named {describe(name)}; {hint}")
        chosen.append(scenarios[name])
    return chosen


def scenarios_yaml(scenarios: Sequence[Scenario]) -> str:
    """A scenarios file holding exactly ``scenarios`` (what ``load_scenarios`` reads back)."""
    entries: dict[str, dict[str, Any]] = {}
    for scenario in scenarios:
        entry = scenario.to_dict()
        name = entry.pop("name")
        entry["thresholds"] = {k: v for k, v in entry["thresholds"].items() if v is not None}
        entries[name] = {k: v for k, v in entry.items() if v is not None}
    return yaml.safe_dump({"version": 1, "scenarios": entries}, sort_keys=False,
                          allow_unicode=True)
