"""Sampled call stacks, the one form both CPU recorders (py-spy, perf) are turned into.

A :class:`SampledStacks` holds, per thread, stacks in time order (root first) with a weight
in seconds. From it come the speedscope JSON (time order kept) and the collapsed counts the
SVG flamegraph is drawn from, so py-spy and perf profiles look the same.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stress.profiling.base import short_path

SPEEDSCOPE_SCHEMA = "https://www.speedscope.app/file-format-schema.json"


@dataclass(frozen=True)
class Frame:
    name: str
    file: str
    line: int | None = None

    def label(self) -> str:
        """``name (file:line)``, the way py-spy names frames."""
        where = short_path(self.file)
        if self.line:
            where = f"{where}:{self.line}"
        return f"{self.name} ({where})" if where else self.name


@dataclass
class ThreadSamples:
    name: str
    stacks: list[tuple[int, ...]] = field(default_factory=list)  # frame indexes, root first
    weights: list[float] = field(default_factory=list)  # seconds
    taken: int = 0  # samples recorded, before identical neighbours were merged

    def add(self, stack: tuple[int, ...], weight: float, taken: int = 1) -> None:
        self.taken += taken
        # Consecutive identical stacks are merged: time order survives, size stays bounded.
        if self.stacks and self.stacks[-1] == stack:
            self.weights[-1] += weight
        else:
            self.stacks.append(stack)
            self.weights.append(weight)


@dataclass
class SampledStacks:
    frames: list[Frame] = field(default_factory=list)
    threads: list[ThreadSamples] = field(default_factory=list)
    _index: dict[Frame, int] = field(default_factory=dict, repr=False)

    def frame_id(self, frame: Frame) -> int:
        index = self._index.get(frame)
        if index is None:
            index = self._index[frame] = len(self.frames)
            self.frames.append(frame)
        return index

    def thread(self, name: str) -> ThreadSamples:
        for thread in self.threads:
            if thread.name == name:
                return thread
        thread = ThreadSamples(name)
        self.threads.append(thread)
        return thread

    @property
    def total_seconds(self) -> float:
        return sum(sum(t.weights) for t in self.threads)

    @property
    def sample_count(self) -> int:
        return sum(t.taken for t in self.threads)

    def collapsed(self) -> dict[tuple[str, ...], float]:
        """Seconds per distinct stack of frame labels, threads merged (as py-spy draws them)."""
        labels = [frame.label() for frame in self.frames]
        counts: dict[tuple[str, ...], float] = {}
        for thread in self.threads:
            for stack, weight in zip(thread.stacks, thread.weights, strict=True):
                key = tuple(labels[i] for i in stack)
                counts[key] = counts.get(key, 0.0) + weight
        return counts


def from_speedscope(data: dict[str, Any]) -> SampledStacks:
    """Read a sampled speedscope document (py-spy's ``--format speedscope``)."""
    source_frames = data["shared"]["frames"]
    result = SampledStacks()
    remap = [result.frame_id(Frame(str(f["name"]), str(f.get("file") or ""),
                                   f.get("line") or None)) for f in source_frames]
    for profile in data["profiles"]:
        if profile.get("type") != "sampled":
            continue
        thread = result.thread(str(profile.get("name", "thread")))
        weights = profile.get("weights") or [1.0] * len(profile["samples"])
        for stack, weight in zip(profile["samples"], weights, strict=True):
            thread.add(tuple(remap[i] for i in stack), float(weight))
    return result


def to_speedscope(stacks: SampledStacks, *, name: str) -> dict[str, Any]:
    profiles = []
    for thread in stacks.threads:
        total = sum(thread.weights)
        profiles.append({
            "type": "sampled", "name": thread.name, "unit": "seconds",
            "startValue": 0, "endValue": round(total, 6),
            "samples": [list(s) for s in thread.stacks],
            "weights": [round(w, 6) for w in thread.weights],
        })
    return {
        "$schema": SPEEDSCOPE_SCHEMA,
        "exporter": "asyncio-stress-kit",
        "name": name,
        "activeProfileIndex": 0,
        "shared": {"frames": [{"name": f.name, "file": f.file, "line": f.line}
                              for f in stacks.frames]},
        "profiles": profiles,
    }


def write_speedscope(stacks: SampledStacks, path: Path, *, name: str) -> None:
    from stress.report.files import write_file_atomically

    write_file_atomically(path, json.dumps(to_speedscope(stacks, name=name),
                                           separators=(",", ":")))
