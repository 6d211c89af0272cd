"""Finding and reading the project config: ``[tool.stress]`` in ``pyproject.toml``, or
``stress.toml`` for a repository without one. What the keys mean is ``stress.config.settings``'s."""

from __future__ import annotations

import difflib
import tomllib
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stress.config import strict_yaml
from stress.config.scenario import describe
from stress.errors import ConfigError

SCENARIOS_TABLE = "scenarios"  # the overrides table: the one key that is not a setting


@dataclass(frozen=True, kw_only=True)
class ProjectConfig:
    """The table found, flattened to dotted keys, and the folder its paths are relative to."""

    label: str  # "/p/pyproject.toml [tool.stress]" or "/p/stress.toml"
    prefix: str  # how a key is spelt in messages: "tool.stress." or ""
    folder: Path
    values: Mapping[str, object]
    scenarios: Mapping[str, object]  # the overrides table, as written


def find_project_config(cwd: Path, *, known: Collection[str],
                        tables: Collection[str]) -> ProjectConfig | None:
    """The nearest ``[tool.stress]`` or ``stress.toml`` from ``cwd`` upwards; the search
    stops at the folder holding ``.git`` (the repository's root). ``known`` are the dotted
    setting names, ``tables`` the sub-tables they use (``container`` for
    ``container.memory``); any other key is an error with a "did you mean"."""
    cwd = cwd.resolve()
    for folder in (cwd, *cwd.parents):
        pyproject, own = folder / "pyproject.toml", folder / "stress.toml"
        table = None
        if pyproject.is_file():
            tool = _read_toml(pyproject).get("tool", {})
            table = tool.get("stress") if isinstance(tool, dict) else None
        if table is not None and own.is_file():
            raise ConfigError(f"{own}: {pyproject} has a [tool.stress] table too; "
                              "keep the settings in one of them")
        if table is not None:
            return _project_config(table, f"{pyproject} [tool.stress]", folder,
                                   "tool.stress.", known=known, tables=tables)
        if own.is_file():
            return _project_config(_read_toml(own), str(own), folder, "", known=known,
                                   tables=tables)
        if (folder / ".git").exists():
            return None
    return None


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read ({exc.strerror})") from None
    try:
        return tomllib.loads(strict_yaml.decode(data, str(path), "a config file"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: is not valid TOML ({exc}); fix the syntax there") from None


def _project_config(table: object, label: str, folder: Path, prefix: str, *,
                    known: Collection[str], tables: Collection[str]) -> ProjectConfig:
    if not isinstance(table, dict):
        raise ConfigError(f"{label}: expected a table of settings, got {describe(table)}")
    values: dict[str, object] = {}
    scenarios: Mapping[str, object] = {}
    for key, value in table.items():
        if key == SCENARIOS_TABLE:
            if not isinstance(value, dict):
                raise ConfigError(f"{label}: key '{prefix}{key}' must be a table of scenario "
                                  f"names, got {describe(value)} (the file is 'scenarios_file')")
            scenarios = value
        elif key in tables:
            if not isinstance(value, dict):
                raise ConfigError(f"{label}: key '{prefix}{key}' must be a table, "
                                  f"got {describe(value)}")
            for sub, item in value.items():
                values[f"{key}.{sub}"] = item
        else:
            values[key] = value
    for key in values:
        if key not in known:
            allowed = [*known, SCENARIOS_TABLE]
            close = difflib.get_close_matches(key, allowed, n=1)
            hint = f"did you mean '{prefix}{close[0]}'?" if close else \
                f"allowed: {', '.join(allowed)}"
            raise ConfigError(f"{label}: unknown key '{prefix}{key}'; {hint}")
    return ProjectConfig(label=label, prefix=prefix, folder=folder, values=values,
                         scenarios=scenarios)
