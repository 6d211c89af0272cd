"""Per-function instruction costs from a callgrind output file, with Python functions named.

Python 3.12+ run with ``-X perf`` (``PYTHONPERFSUPPORT=1``) enters every Python frame through
a small trampoline of its own and lists the trampolines in ``/tmp/perf-PID.map`` as
``ADDRESS SIZE py::function:file``. Callgrind knows no symbol for a trampoline, so it names
it by address (``fn=0x...`` in an ``ob=???`` block); the calls it makes (into
``_PyEval_EvalFrameDefault``) carry the inclusive cost of that Python frame, its callees
included. Reading the map turns those addresses into ``function (file)`` labels.

With the perf trampoline, the interpreter does not inline Python-to-Python calls, so every
Python call gets its own trampoline entry: the costs are per Python function. Without a map
(Python 3.11, or perf support off) only C-level names are available.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from stress.profiling.base import short_path

_NAMED = re.compile(r"^\((\d+)\)(?: (.*))?$")  # compressed names: "(12) name" or "(12)"
_RECURSION = re.compile(r"'(\d+)$")  # callgrind's recursion levels: "name'2"


@dataclass(frozen=True, kw_only=True)
class FunctionCost:
    """One function's instructions, summed over every call of it."""

    name: str  # symbol, or "0x..." for code without one (a perf trampoline)
    object: str  # the binary it lives in ("???" for anonymous memory)
    self_cost: int
    inclusive: int  # self plus everything it called (outermost recursion level only)


@dataclass(frozen=True, kw_only=True)
class CallgrindProfile:
    pid: int | None
    total: int  # the "summary:" (or "totals:") line: every instruction of the run
    functions: tuple[FunctionCost, ...]


class _Names:
    """Callgrind's name compression: the first use of an id gives the name, later ones not."""

    def __init__(self) -> None:
        self.known: dict[str, str] = {}

    def __call__(self, text: str) -> str:
        match = _NAMED.match(text)
        if match is None:
            return text
        ident, name = match.groups()
        if name is not None:
            self.known[ident] = name
        return self.known.get(ident, text)


def parse_callgrind(lines: Iterable[str]) -> CallgrindProfile:
    """Self and inclusive cost per (object, function) from a callgrind file with one event."""
    objects, functions = _Names(), _Names()
    self_costs: dict[tuple[str, str], int] = defaultdict(int)
    call_costs: dict[tuple[str, str], int] = defaultdict(int)
    pid: int | None = None
    total = 0
    current = ("???", "???")
    ob = "???"
    pending_call = False  # the next cost line is a call's inclusive cost
    for raw in lines:
        line = raw.rstrip("\n")
        if not line or line.startswith("#"):
            continue
        head = line[0]
        if head.isdigit() or head in "+-*":
            cost = int(line.split()[-1])
            if pending_call:
                call_costs[current] += cost
                pending_call = False
            else:
                self_costs[current] += cost
            continue
        key, _, value = line.partition("=")
        if key == "ob":
            ob = objects(value)
        elif key == "fn":
            current = (ob, functions(value))
        elif key == "cob":  # cfi= and cfl= name files: nothing to keep
            objects(value)
        elif key == "cfn":
            functions(value)
        elif key == "calls":
            pending_call = True
        elif line.startswith("pid:"):
            pid = int(line.split(":", 1)[1])
        elif line.startswith(("summary:", "totals:")):
            total = max(total, int(line.split(":", 1)[1].split()[0]))
    costs = tuple(
        FunctionCost(name=name, object=obj, self_cost=self_costs[(obj, name)],
                     inclusive=self_costs[(obj, name)] + call_costs[(obj, name)])
        for obj, name in sorted(set(self_costs) | set(call_costs)))
    return CallgrindProfile(pid=pid, total=total, functions=costs)


def read_callgrind(path: Path) -> CallgrindProfile:
    with path.open(encoding="utf-8", errors="replace") as lines:
        return parse_callgrind(lines)


def read_perf_map(path: Path) -> dict[int, str]:
    """``/tmp/perf-PID.map``: trampoline start address -> ``py::function:file``."""
    entries: dict[int, str] = {}
    with path.open(encoding="utf-8", errors="replace") as lines:
        for line in lines:
            parts = line.rstrip("\n").split(" ", 2)
            if len(parts) == 3:
                entries[int(parts[0], 16)] = parts[2]
    return entries


def python_label(symbol: str) -> str:
    """``py::Queue.get:/usr/lib/python3.12/asyncio/queues.py``
    -> ``Queue.get (asyncio/queues.py)``
    (the file shortened to its import path)."""
    name, _, file = symbol.removeprefix("py::").partition(":")
    return f"{name} ({short_path(file)})" if file else name


def function_costs(profile: CallgrindProfile, perf_map: Mapping[int, str] | None = None, *,
                   python_only: bool = True) -> dict[str, int]:
    """Inclusive instructions per function label, Python functions named through the map.

    Code objects that share a name and file are summed. Only the outermost recursion level
    of a function is counted: callgrind's deeper levels (``name'2``) are inside its
    inclusive cost already. With ``python_only`` and no map entry matching, C functions are
    returned instead (``name [object]``), so a caller always gets something to rank.
    """
    python: dict[str, int] = defaultdict(int)
    native: dict[str, int] = defaultdict(int)
    for cost in profile.functions:
        level = _RECURSION.search(cost.name)
        if level is not None and int(level.group(1)) > 1:
            continue
        name = _RECURSION.sub("", cost.name)
        symbol = None
        if perf_map and name.startswith("0x"):
            symbol = perf_map.get(int(name, 16))
        if symbol is not None:
            python[python_label(symbol)] += cost.inclusive
        else:
            native[f"{name} [{Path(cost.object).name}]"] += cost.inclusive
    if python_only and python:
        return dict(python)
    return {**native, **python}


def per_token_costs(small: Mapping[str, int], large: Mapping[str, int],
                    tokens: int) -> dict[str, float]:
    """Each function's cost per token from runs of two sizes ``tokens`` apart (start-up out)."""
    return {name: (large.get(name, 0) - small.get(name, 0)) / tokens
            for name in set(small) | set(large)}


@dataclass(frozen=True, kw_only=True)
class FunctionGrowth:
    function: str
    base: float
    head: float

    @property
    def ratio(self) -> float:
        """head / base: above 1 is slower; infinite for a function new in head."""
        return self.head / self.base if self.base > 0 else float("inf")


def slower_functions(base: Mapping[str, float], head: Mapping[str, float], top: int = 10, *,
                     min_share: float = 0.1) -> list[FunctionGrowth]:
    """The functions that grew most, the likeliest culprit first.

    Inclusive costs grow along the whole call chain above a slowed function by the same
    amount, so ranking by absolute growth alone cannot tell the slowed function from its
    callers. Functions whose growth is at least ``min_share`` of the largest growth are
    ranked by ratio (the slowed function is the smallest of the chain, so its ratio is the
    largest); the rest follow by growth.
    """
    rows = [FunctionGrowth(function=name, base=base.get(name, 0), head=head.get(name, 0))
            for name in set(base) | set(head)]
    grown = [row for row in rows if row.head > row.base]
    if not grown:
        return []
    largest = max(row.head - row.base for row in grown)
    material = [row for row in grown if row.head - row.base >= min_share * largest]
    rest = [row for row in grown if row.head - row.base < min_share * largest]
    material.sort(key=lambda row: (-row.ratio, -(row.head - row.base), row.function))
    rest.sort(key=lambda row: (-(row.head - row.base), row.function))
    return (material + rest)[:top]


def growth_table(rows: Iterable[FunctionGrowth], *, unit: str = "instructions") -> str:
    """A Markdown table of the functions that got slower."""
    lines = [f"| function | base {unit} | head {unit} | head/base |", "|---|---:|---:|---:|"]
    for row in rows:
        ratio = "new" if row.base <= 0 else f"{row.ratio:.3f}"
        lines.append(f"| `{row.function}` | {row.base:,.0f} | {row.head:,.0f} | {ratio} |")
    return "\n".join(lines)
