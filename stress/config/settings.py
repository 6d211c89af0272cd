"""The kit's options, resolved once from one cascade, each value saying where it came from.

Lowest to highest: the built-in default, the project config, ``STRESS_*`` environment
variables, command-line flags. The project config is the ``[tool.stress]`` table of a
``pyproject.toml`` or, for a repository without one, the top level of a ``stress.toml``,
looked for from the current folder upwards (not past the git root)::

    [tool.stress]
    target = "chatapp.stress:target"
    scenarios_file = "stress/scenarios.yaml"   # default: the built-in scenarios
    select = ["short", "backpressure"]          # default: all
    profile = ["memory", "cpu"]
    engine = "auto"                             # host | docker | auto
    out = "build/stress-results"
    scale = 0.1
    lock = "stress-requirements.txt"            # or another hashed lock, or a pylock.toml
    extra_requirements = ["uvloop>=0.19"]       # locked too: packages only stress runs need

    [tool.stress.container]
    python = "3.12"
    memory = "2g"
    cpus = 2

    [tool.stress.ab]
    scenarios = ["short"]
    rounds = 7
    max_drop = 15

    [tool.stress.scenarios.short.thresholds]    # same shape as an 'extends' scenarios file
    min_throughput = 2000

Each key's environment variable is ``STRESS_`` + the key in capitals, dots as ``_``
(``STRESS_SCALE``, ``STRESS_CONTAINER_MEMORY``, ``STRESS_AB_MAX_DROP``); lists are
comma-separated there, and an empty variable counts as unset.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, Literal, TypeVar, cast

from stress.config import scenarios as config
from stress.config.project import SCENARIOS_TABLE, ProjectConfig, find_project_config
from stress.config.scenario import Scenario, describe
from stress.errors import ConfigError
from stress.profiling import PROFILE_KINDS
from stress.target import DEFAULT_TARGET

T = TypeVar("T")
Engine = Literal["host", "docker", "auto"]
ENGINES: tuple[Engine, ...] = ("host", "docker", "auto")
DEFAULT = "default"
COMMAND_LINE = "command line"


@dataclass(frozen=True)
class Sourced(Generic[T]):
    """A resolved value and where it came from: ``"default"``, the config file (e.g.
    ``"/p/pyproject.toml [tool.stress]"``), the variable (``"STRESS_SCALE"``) or
    ``"command line"``."""

    value: T
    origin: str


@dataclass(frozen=True, kw_only=True)
class ContainerSettings:
    python: Sourced[str | None]  # None: the image's own Python
    memory: Sourced[str]  # docker's notation: 512m, 4g
    cpus: Sourced[float | None]  # None: no CPU limit


@dataclass(frozen=True, kw_only=True)
class GateSettings:
    scenarios: Sourced[tuple[str, ...]]  # () : all
    rounds: Sourced[int]
    max_drop: Sourced[float]  # percent


@dataclass(frozen=True, kw_only=True)
class Settings:
    """Every option of a run, resolved. ``scenarios`` is the full set after the project's
    overrides; :meth:`chosen_scenarios` is what a run measures."""

    config_file: str | None  # the label of the project config used, or None
    target: Sourced[str]
    scenarios_file: Sourced[Path | None]
    select: Sourced[tuple[str, ...]]
    profile: Sourced[tuple[str, ...]]
    engine: Sourced[Engine]
    out: Sourced[Path]
    scale: Sourced[float]
    lock: Sourced[Path | None]  # None: stress-requirements.txt at the project's root
    extra_requirements: Sourced[tuple[str, ...]]  # packages only stress runs need
    container: ContainerSettings
    ab: GateSettings
    scenarios: tuple[Scenario, ...]
    scenario_origins: tuple[str, ...]  # one per scenario: "built-in", a file, "... changed in"

    def chosen_scenarios(self) -> list[Scenario]:
        """The selected scenarios (all when none are), in the selection's order, scaled."""
        chosen = config.select(self.scenario_map(), self.select.value, self.select.origin)
        return [s.scaled(self.scale.value) for s in chosen]

    def scenario_map(self) -> dict[str, Scenario]:
        return {s.name: s for s in self.scenarios}

    def items(self) -> list[tuple[str, Sourced[Any]]]:
        """(dotted key, value) for every setting, in the table's order."""
        return [(key.name, _get(self, key.name)) for key in KEYS]


# -- the keys: name, default, converter, flag ----------------------------------------------

Convert = Callable[[object, str, Path | None], object]  # (raw, what, base folder) -> value


@dataclass(frozen=True)
class _Key:
    name: str  # dotted: "scale", "container.memory"
    default: object
    convert: Convert
    flag: str  # how the command line spells it, for messages

    @property
    def env(self) -> str:
        return "STRESS_" + self.name.upper().replace(".", "_")


def _text(raw: object, what: str, base: Path | None) -> str:
    if not isinstance(raw, str) or not raw.strip():
        raise ConfigError(f"{what} is {describe(raw)}; expected non-empty text")
    return raw.strip()


def _target(raw: object, what: str, base: Path | None) -> str:
    text = _text(raw, what, base)
    module, sep, attr = text.partition(":")
    if not (module and sep and attr):
        raise ConfigError(f"{what} is {describe(text)}; expected MODULE:ATTR, "
                          f"e.g. {DEFAULT_TARGET}")
    return text


def _path(raw: object, what: str, base: Path | None) -> Path:
    if isinstance(raw, Path):
        raw = str(raw)
    path = Path(_text(raw, what, base))
    return base / path if base is not None else path  # a config file's paths: from its folder


def _names(raw: object, what: str, base: Path | None) -> tuple[str, ...]:
    if isinstance(raw, str):
        raw = [part.strip() for part in raw.split(",") if part.strip()]
    if not isinstance(raw, list | tuple) or not all(isinstance(n, str) and n for n in raw):
        raise ConfigError(f"{what} is {describe(raw)}; expected a list of scenario names")
    return tuple(dict.fromkeys(raw))


def _requirements(raw: object, what: str, base: Path | None) -> tuple[str, ...]:
    if isinstance(raw, str):
        raw = [part.strip() for part in raw.split(",") if part.strip()]
    if not isinstance(raw, list | tuple) or not all(isinstance(r, str) and r.strip()
                                                     for r in raw):
        raise ConfigError(f"{what} is {describe(raw)}; expected a list of requirements, "
                          "e.g. ['uvloop>=0.19']")
    return tuple(dict.fromkeys(r.strip() for r in raw))


def _profile(raw: object, what: str, base: Path | None) -> tuple[str, ...]:
    kinds = tuple(kind.lower() for kind in _names(raw, what, base))
    for kind in kinds:
        if kind not in PROFILE_KINDS:
            raise ConfigError(f"{what}: unknown profile kind {describe(kind)}; allowed: "
                              f"{', '.join(PROFILE_KINDS)}")
    return tuple(dict.fromkeys(kinds))


def _engine(raw: object, what: str, base: Path | None) -> Engine:
    if raw not in ENGINES:
        raise ConfigError(f"{what} is {describe(raw)}; expected one of {', '.join(ENGINES)}")
    return raw  # narrowed by the check against ENGINES


def _number(raw: object, what: str, *, whole: bool = False) -> float:
    if isinstance(raw, str):  # from the environment, or a flag typed as text
        with contextlib.suppress(ValueError):
            raw = int(raw) if whole else float(raw)
    ok = isinstance(raw, int) if whole else isinstance(raw, int | float)
    if isinstance(raw, bool) or not ok or not math.isfinite(cast(float, raw)):
        expected = "a whole number" if whole else "a finite number"
        raise ConfigError(f"{what} is {describe(raw)}; expected {expected}")
    return cast(float, raw)


def _scale(raw: object, what: str, base: Path | None) -> float:
    value = float(_number(raw, what))
    if value <= 0:
        # A typed flag keeps the command line's own wording ("--scale 0.0: ...").
        shown = f"{what} {value}:" if what.startswith("--") else f"{what} is {value:g};"
        raise ConfigError(f"{shown} expected a factor > 0, e.g. 0.01")
    return value


def _cpus(raw: object, what: str, base: Path | None) -> float:
    value = float(_number(raw, what))
    if value <= 0:
        raise ConfigError(f"{what} is {value:g}; expected CPUs > 0, e.g. 2 or 1.5")
    return value


def _rounds(raw: object, what: str, base: Path | None) -> int:
    value = int(_number(raw, what, whole=True))
    if value < 1:
        raise ConfigError(f"{what} is {value}; expected a whole number >= 1 (5 is usual)")
    return value


def _max_drop(raw: object, what: str, base: Path | None) -> float:
    value = float(_number(raw, what))
    if not 0 < value < 100:
        raise ConfigError(f"{what} is {value:g}; expected a percentage between 0 and 100, "
                          "e.g. 20")
    return value


def _matching(pattern: str, example: str) -> Convert:
    def convert(raw: object, what: str, base: Path | None) -> str:
        if isinstance(raw, int | float) and not isinstance(raw, bool):  # python = 3.12
            raise ConfigError(f"{what} is the number {raw}; expected text in quotes, "
                              f"e.g. '{example.split(maxsplit=1)[0]}'")
        text = _text(raw, what, base)
        if not re.fullmatch(pattern, text, re.IGNORECASE):
            raise ConfigError(f"{what} is {describe(text)}; expected e.g. {example}")
        return text
    return convert


KEYS: tuple[_Key, ...] = (
    _Key("target", DEFAULT_TARGET, _target, "--target"),
    _Key("scenarios_file", None, _path, "--scenarios"),
    _Key("select", (), _names, "NAME"),
    _Key("profile", (), _profile, "--profile"),
    _Key("engine", "host", _engine, "--engine"),
    _Key("out", Path("stress-results"), _path, "--out"),
    _Key("scale", 1.0, _scale, "--scale"),
    _Key("lock", None, _path, "lock"),
    _Key("extra_requirements", (), _requirements, "extra_requirements"),
    _Key("container.python", None, _matching(r"3\.\d{1,2}", "3.12"), "--python"),
    _Key("container.memory", "4g", _matching(r"\d+(\.\d+)?[bkmg]?", "4g or 512m"), "--memory"),
    _Key("container.cpus", None, _cpus, "--cpus"),
    _Key("ab.scenarios", (), _names, "NAME"),
    _Key("ab.rounds", 5, _rounds, "--rounds"),
    _Key("ab.max_drop", 20.0, _max_drop, "--max-drop"),
)
_BY_NAME = {key.name: key for key in KEYS}
_TABLES = ("container", "ab")


def _get(settings: Settings, name: str) -> Sourced[Any]:
    value: Any = settings
    for part in name.split("."):
        value = getattr(value, part)
    return cast(Sourced[Any], value)


# -- the cascade ---------------------------------------------------------------------------

def resolve_settings(cli_values: Mapping[str, object], cwd: Path,
                     environ: Mapping[str, str]) -> Settings:
    """All options, resolved once: default < project config < ``STRESS_*`` < command line.

    ``cli_values`` maps a setting's dotted name (``"scale"``, ``"scenarios_file"``,
    ``"select"``, ``"container.memory"``, ``"ab.rounds"``; see ``KEYS``) to what the user gave
    on the command line; a value of ``None`` means "not given", so give argparse flags a
    default of ``None`` and pass ``vars(args)`` entries through. Values may be typed (float,
    Path, list) or text as typed (``"memory,cpu"``). An unknown name is a programming error
    (``ValueError``).

    ``cwd`` is where the project config is looked for (upwards, to the git root); ``environ``
    is usually ``os.environ``. Paths in a config file are relative to its folder; paths from
    the environment and the command line stay as given (relative to the working folder).

    The scenario set is loaded here too (``scenarios_file`` or the built-ins, then the config's
    ``[tool.stress.scenarios]`` overrides), and ``select`` and ``ab.scenarios`` are checked
    against it, so every input error surfaces before any work starts. Every such error is
    one line in a ``ConfigError`` (exit 2) naming the file or variable or flag, the key and
    the fix.
    """
    unknown = set(cli_values) - set(_BY_NAME)
    if unknown:
        raise ValueError(f"resolve_settings: no setting named {sorted(unknown)[0]!r}")
    # A run inside the container is handed its resolved settings; it must not apply the
    # project's overrides a second time.
    project = None if environ.get("STRESS_NO_PROJECT_CONFIG") == "1" else \
        find_project_config(cwd, known=tuple(_BY_NAME), tables=_TABLES)
    resolved: dict[str, Sourced[Any]] = {}
    where: dict[str, str] = {}  # how each value's source is named in a message
    for key in KEYS:
        value, what = Sourced(key.default, DEFAULT), key.flag
        if project is not None and key.name in project.values:
            what = f"{project.label}: key '{project.prefix}{key.name}'"
            value = Sourced(key.convert(project.values[key.name], what, project.folder),
                            project.label)
        if environ.get(key.env, "").strip():  # an empty variable counts as unset
            what = key.env
            value = Sourced(key.convert(environ[key.env], what, None), key.env)
        if cli_values.get(key.name) is not None:
            what = key.flag
            value = Sourced(key.convert(cli_values[key.name], what, None), COMMAND_LINE)
        resolved[key.name] = value
        where[key.name] = what
    path = resolved["scenarios_file"].value
    if path is not None and not path.is_file():
        raise ConfigError(f"{where['scenarios_file']}: no such file {str(path)!r}")
    scenarios, origins = _scenario_set(resolved["scenarios_file"], project)
    for name in ("select", "ab.scenarios"):
        # Names typed on the command line are looked up in the scenarios file: name it.
        typed = resolved[name].origin == COMMAND_LINE
        source = (str(path) if path else config.BUILTIN_NAME) if typed else where[name]
        config.select(scenarios, resolved[name].value, source)
    top = {name: value for name, value in resolved.items() if "." not in name}
    return Settings(
        config_file=project.label if project is not None else None,
        container=ContainerSettings(**_table(resolved, "container")),
        ab=GateSettings(**_table(resolved, "ab")),
        scenarios=tuple(scenarios.values()), scenario_origins=origins, **top,
    )


def _table(resolved: Mapping[str, Sourced[Any]], table: str) -> dict[str, Sourced[Any]]:
    return {name.partition(".")[2]: value for name, value in resolved.items()
            if name.startswith(f"{table}.")}


def _scenario_set(scenarios_file: Sourced[Path | None],
                  project: ProjectConfig | None) -> tuple[dict[str, Scenario], tuple[str, ...]]:
    path = scenarios_file.value
    base = config.load_scenarios(path)
    base_origin = "built-in" if path is None else str(path)
    if project is None or not project.scenarios:
        return base, tuple(base_origin for _ in base)
    source = f"{project.label} {project.prefix}{SCENARIOS_TABLE}"
    changed = config.apply_overrides(base, project.scenarios, source=source)
    origins = tuple(
        f"{base_origin}, changed in {project.label}" if name in base and name in
        project.scenarios else base_origin if name in base else project.label
        for name in changed
    )
    return changed, origins


def to_json(settings: Settings) -> dict[str, Any]:
    """Plain values for ``stress-kit config --json``."""
    def plain(value: object) -> object:
        if isinstance(value, Path):
            return str(value)
        return list(value) if isinstance(value, tuple) else value

    return {
        "config_file": settings.config_file,
        "settings": {name: {"value": plain(item.value), "origin": item.origin}
                     for name, item in settings.items()},
        "scenarios": {s.name: {"origin": origin, **dataclasses.asdict(s)}
                      for s, origin in zip(settings.scenarios, settings.scenario_origins,
                                           strict=True)},
    }
