"""Leak report and statistics from an aggregated memray capture.

``memray stats`` refuses aggregated captures (they keep no per-allocation history), so the
figures here are computed with ``memray.FileReader`` from what such a capture does keep:
the allocations alive at the heap's high-water mark and those still alive at exit, each
with its Python stack, plus the RSS snapshots.

"Leaked" means still allocated when the scenario child exited, minus what was allocated
while importing modules: modules, their code and their constants live as long as the
process by design, and counting them would make every run "leak" a few MB.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stress.profiling.base import MIB, short_path

TOP_SITES = 10
STACK_DEPTH_SHOWN = 12
_IMPORT_FILES = ("<frozen importlib", "<frozen zipimport>")

StackFrame = tuple[str, str, int]  # function, file, line


@dataclass
class Site:
    """Allocations grouped by where they were made (the innermost Python frame)."""

    function: str
    file: str
    line: int
    size: int = 0
    count: int = 0
    stacks: dict[tuple[StackFrame, ...], int] = field(default_factory=dict)  # stack -> bytes

    @property
    def where(self) -> str:
        if not self.file:
            return self.function
        return f"{self.function} ({short_path(self.file)}:{self.line})"

    def main_stack(self) -> tuple[StackFrame, ...]:
        return max(self.stacks.items(), key=lambda item: item[1])[0] if self.stacks else ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "location": f"{self.function}:{short_path(self.file)}:{self.line}",
            "size": self.size, "count": self.count,
            "stack": [f"{fn} ({short_path(file)}:{line})" for fn, file, line in
                      self.main_stack()[:STACK_DEPTH_SHOWN]],
        }


@dataclass(frozen=True, kw_only=True)
class Group:
    """Allocation records reduced to totals and sites."""

    size: int
    count: int
    sites: list[Site]  # biggest first
    allocators: dict[str, int]  # allocator name -> allocations

    def top_by_size(self, n: int = TOP_SITES) -> list[Site]:
        return self.sites[:n]

    def top_by_count(self, n: int = TOP_SITES) -> list[Site]:
        return sorted(self.sites, key=lambda s: s.count, reverse=True)[:n]


@dataclass(frozen=True, kw_only=True)
class CaptureSummary:
    capture: str
    leaked: Group  # still alive at exit, import-time allocations left out
    leaked_at_import: Group  # still alive at exit, allocated while importing
    peak: Group  # alive at the heap's high-water mark
    peak_bytes: int
    rss_start: int | None
    rss_peak: int | None
    rss_end: int | None
    duration_s: float
    metadata: dict[str, Any]

    @property
    def leaked_mb(self) -> float:
        return self.leaked.size / MIB


def _is_import(stack: tuple[StackFrame, ...]) -> bool:
    return any(file.startswith(_IMPORT_FILES) for _fn, file, _line in stack)


def _stack(record: Any) -> tuple[StackFrame, ...]:
    return tuple((str(fn), str(file), int(line)) for fn, file, line in record.stack_trace())


def _group(records: Iterable[tuple[tuple[StackFrame, ...], Any]]) -> Group:
    """Totals and sites of (stack, memray AllocationRecord) pairs."""
    import memray

    sites: dict[StackFrame, Site] = {}
    allocators: dict[str, int] = {}
    for stack, record in records:
        key = stack[0] if stack else ("(no Python frame)", "", 0)
        site = sites.get(key)
        if site is None:
            site = sites[key] = Site(*key)
        site.size += record.size
        site.count += record.n_allocations
        site.stacks[stack] = site.stacks.get(stack, 0) + record.size
        allocator = memray.AllocatorType(record.allocator).name
        allocators[allocator] = allocators.get(allocator, 0) + record.n_allocations
    ordered = sorted(sites.values(), key=lambda s: s.size, reverse=True)
    return Group(size=sum(s.size for s in ordered), count=sum(s.count for s in ordered),
                 sites=ordered, allocators=dict(sorted(allocators.items())))


def summarize_capture(path: Path) -> CaptureSummary:
    """Read an aggregated (or full) memray capture. Raises on an unreadable file."""
    import memray

    reader = memray.FileReader(str(path), report_progress=False)
    try:
        leaked_records = [(_stack(r), r) for r in
                          reader.get_leaked_allocation_records(merge_threads=True)]
        leaked = _group(item for item in leaked_records if not _is_import(item[0]))
        at_import = _group(item for item in leaked_records if _is_import(item[0]))
        peak = _group((_stack(r), r) for r in
                      reader.get_high_watermark_allocation_records(merge_threads=True))
        snapshots = list(reader.get_memory_snapshots())
        meta = reader.metadata
    finally:
        reader.close()
    duration = (meta.end_time - meta.start_time).total_seconds()
    return CaptureSummary(
        capture=path.name, leaked=leaked, leaked_at_import=at_import, peak=peak,
        peak_bytes=int(meta.peak_memory),
        rss_start=snapshots[0].rss if snapshots else None,
        rss_peak=max(s.rss for s in snapshots) if snapshots else None,
        rss_end=snapshots[-1].rss if snapshots else None,
        duration_s=duration,
        metadata={
            "start_time": meta.start_time.isoformat(), "end_time": meta.end_time.isoformat(),
            "command_line": meta.command_line, "pid": meta.pid,
            "python_allocator": meta.python_allocator,
            "has_native_traces": meta.has_native_traces,
            "trace_python_allocators": meta.trace_python_allocators,
            "file_format": getattr(meta.file_format, "name", str(meta.file_format)),
        },
    )


def size_text(size: float) -> str:
    if abs(size) >= MIB:
        return f"{size / MIB:.2f} MB"
    if abs(size) >= 1024:
        return f"{size / 1024:.1f} kB"
    return f"{int(size)} B"


def _is_machinery(frame: StackFrame) -> bool:
    """Frames every stack shares: the event loop running a task, the module being run."""
    fn, file, _line = frame
    return ((fn == "_run" and file.endswith(("asyncio/events.py", "asyncio\\events.py")))
            or file.startswith("<frozen runpy>")
            or "memray/commands/" in file.replace("\\", "/"))


def _stack_lines(site: Site, indent: str) -> list[str]:
    stack = site.main_stack()
    if not stack:
        return [f"{indent}(allocated with no Python frame on the stack)"]
    shown = list(stack[:STACK_DEPTH_SHOWN])
    for depth, frame in enumerate(shown):
        if depth > 0 and _is_machinery(frame):
            shown = shown[:depth + 1]
            break
    width = max(len(fn) for fn, _file, _line in shown)
    lines = [f"{indent}{fn:<{width}}  {short_path(file)}:{line}" for fn, file, line in shown]
    if len(stack) > len(shown):
        lines.append(f"{indent}... {len(stack) - len(shown)} outer frames")
    if len(site.stacks) > 1:
        lines.append(f"{indent}(the stack with the most bytes; "
                     f"{len(site.stacks) - 1} other stacks reach this line)")
    return lines


def leak_report_text(summary: CaptureSummary, *, scenario: str, top: int = TOP_SITES) -> str:
    leaked = summary.leaked
    lines = [
        f"=== memray leak report: {scenario} ===",
        f"Still allocated when the child exited: {size_text(leaked.size)} "
        f"in {leaked.count:,} allocations",
        f"  (not counted: {size_text(summary.leaked_at_import.size)} allocated while importing "
        "modules, which live as long as the process)",
        f"Peak heap: {size_text(summary.peak_bytes)}; capture: {summary.capture} "
        f"(aggregated, Python allocator {summary.metadata.get('python_allocator')})",
    ]
    sites = leaked.top_by_size(top)
    if not sites:
        lines.append("No allocation made after start-up was still alive at exit.")
    else:
        lines.append(f"Top {len(sites)} allocation sites still alive at exit "
                     "(innermost frame first):")
        for rank, site in enumerate(sites, 1):
            lines.append(f"{rank:>3}. {size_text(site.size)} in {site.count:,} allocations "
                         f"at {site.where}")
            lines.extend(_stack_lines(site, "       "))
    return "\n".join(lines) + "\n"


def stats_json(summary: CaptureSummary, *, top: int = TOP_SITES) -> dict[str, Any]:
    def group(g: Group) -> dict[str, Any]:
        return {
            "bytes": g.size, "allocations": g.count, "allocator_type_distribution": g.allocators,
            "top_allocations_by_size": [s.to_dict() for s in g.top_by_size(top)],
            "top_allocations_by_count": [s.to_dict() for s in g.top_by_count(top)],
        }

    return {
        "source": "memray aggregated capture",
        "capture": summary.capture,
        "note": ("aggregated captures keep the allocations alive at the high-water mark and "
                 "at exit, not every allocation: totals over the whole run are not recorded"),
        "duration_s": round(summary.duration_s, 3),
        "peak_memory_bytes": summary.peak_bytes,
        "leaked_bytes": summary.leaked.size,
        "leaked_mb": round(summary.leaked_mb, 3),
        "rss_bytes": {"start": summary.rss_start, "peak": summary.rss_peak,
                      "end": summary.rss_end},
        "high_water_mark": group(summary.peak),
        "leaked_at_exit": group(summary.leaked),
        "leaked_at_exit_import_time": {"bytes": summary.leaked_at_import.size,
                                       "allocations": summary.leaked_at_import.count},
        "metadata": summary.metadata,
    }


def stats_text(summary: CaptureSummary, *, scenario: str, top: int = 5) -> str:
    def rss(value: int | None) -> str:
        return "n/a" if value is None else size_text(value)

    lines = [
        f"memray statistics: {scenario} ({summary.capture}, aggregated capture)",
        "",
        f"Duration:                  {summary.duration_s:.2f} s",
        f"Peak heap:                 {size_text(summary.peak_bytes)} in "
        f"{summary.peak.count:,} live allocations",
        f"Still allocated at exit:   {size_text(summary.leaked.size)} in "
        f"{summary.leaked.count:,} allocations (+ {size_text(summary.leaked_at_import.size)} "
        "from imports)",
        f"RSS start / peak / end:    {rss(summary.rss_start)} / {rss(summary.rss_peak)} / "
        f"{rss(summary.rss_end)}",
        f"Python allocator:          {summary.metadata.get('python_allocator')}",
        "",
        "Allocator type distribution at the high-water mark:",
        *(f"  {name}: {count:,}" for name, count in summary.peak.allocators.items()),
        "",
        f"Top {top} sites by size at the high-water mark:",
        *(f"  - {s.where} -> {size_text(s.size)}" for s in summary.peak.top_by_size(top)),
        "",
        f"Top {top} sites by number of allocations at the high-water mark:",
        *(f"  - {s.where} -> {s.count:,}" for s in summary.peak.top_by_count(top)),
        "",
        f"Top {top} sites still allocated at exit:",
        *(f"  - {s.where} -> {size_text(s.size)} in {s.count:,}"
          for s in summary.leaked.top_by_size(top)),
        "",
        "Aggregated captures keep the allocations alive at the high-water mark and at exit, "
        "not every allocation, so totals over the whole run are not recorded.",
    ]
    return "\n".join(lines) + "\n"
