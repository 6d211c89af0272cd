"""One scenario in a fresh interpreter: ``python -m stress.child SPEC.json``.

The parent (stress.runner) owns the timeout. This process measures the run, streams a
time series to the samples file (so a killed child still leaves its counts behind), and
writes its final figures to the result file. On SIGUSR1 it dumps the stacks of every
thread and every asyncio task to stderr (the scenario log) so a hang can be diagnosed
before it is killed.
"""

from __future__ import annotations

import asyncio
import faulthandler
import gc
import json
import logging
import os
import resource
import signal
import sys
import threading
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any, TextIO

import psutil

from stress.scenario import Scenario
from stress.target import Stats, Target, load_target

log = logging.getLogger("stress.child")

# Parent and child agree on these phase names through the samples file.
PHASE_RUN = "run"
PHASE_QUIT = "quit"
PHASE_DONE = "done"

# Exit code when the target itself raised: the parent reports it as a crash.
EXIT_TARGET_RAISED = 3

_MB = 1024 * 1024


@dataclass(frozen=True, kw_only=True)
class ChildSpec:
    scenario: Scenario
    target: str
    loop: str
    samples_path: Path
    result_path: Path
    sample_interval_s: float
    measure_quit: bool

    def to_json(self) -> str:
        return json.dumps({
            "scenario": self.scenario.to_dict(),
            "target": self.target,
            "loop": self.loop,
            "samples_path": str(self.samples_path),
            "result_path": str(self.result_path),
            "sample_interval_s": self.sample_interval_s,
            "measure_quit": self.measure_quit,
        })

    @classmethod
    def from_json(cls, text: str) -> ChildSpec:
        data = json.loads(text)
        return cls(
            scenario=Scenario.from_dict(data["scenario"]),
            target=data["target"],
            loop=data["loop"],
            samples_path=Path(data["samples_path"]),
            result_path=Path(data["result_path"]),
            sample_interval_s=float(data["sample_interval_s"]),
            measure_quit=bool(data["measure_quit"]),
        )


def _rss_mb(process: psutil.Process) -> float:
    return float(process.memory_info().rss) / _MB


class _RssReader:
    """RSS in MB, for the sampler thread: on Linux one pread of /proc/self/statm.

    Each system call lets the GIL go, and the sampler then waits for the loop's thread to hand
    it back; psutil makes several per reading, one pread on a file kept open makes one.
    """

    def __init__(self) -> None:
        self._process = psutil.Process()
        self._page_mb = os.sysconf("SC_PAGE_SIZE") / _MB if hasattr(os, "sysconf") else 0.0
        try:
            self._statm: int | None = os.open("/proc/self/statm", os.O_RDONLY)
        except OSError:
            self._statm = None  # not Linux: psutil knows the platform's way

    def read(self) -> float:
        if self._statm is None:
            return _rss_mb(self._process)
        return int(os.pread(self._statm, 256, 0).split()[1]) * self._page_mb

    def close(self) -> None:
        if self._statm is not None:
            os.close(self._statm)
            self._statm = None


SAMPLER_THREAD = "stress-sampler"  # the sampler thread's name, as stack dumps show it


class Sampler:
    """A thread writing one JSON line per interval: it keeps sampling when the loop is blocked.

    Reading a few ints and /proc/self/statm ten times a second costs well under 1% of a run
    (ci/sampling_overhead.py measures it).
    """

    def __init__(self, path: Path, interval_s: float) -> None:
        self._file: TextIO = path.open("a", encoding="utf-8", buffering=1)
        self._interval_s = interval_s
        self._rss = _RssReader()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=SAMPLER_THREAD, daemon=True)
        self.stats = Stats()
        self.phase = "start"
        self.t0 = time.perf_counter()
        self.peak_rss_mb = 0.0

    def start(self) -> None:
        self._thread.start()

    def set_phase(self, phase: str, stats: Stats) -> None:
        with self._lock:
            self.phase = phase
            self.stats = stats
            if phase == PHASE_RUN:
                self.t0 = time.perf_counter()
        self.write()

    def write(self) -> None:
        with self._lock:
            rss = self._rss.read()
            self.peak_rss_mb = max(self.peak_rss_mb, rss)
            stats = self.stats
            line = json.dumps({
                "phase": self.phase,
                "t": round(time.perf_counter() - self.t0, 4),
                "rss_mb": round(rss, 3),
                "sent": stats.messages_sent,
                "received": stats.tokens_received,
                "streams": stats.streams_completed,
                "errors": stats.errors,
            })
            self._file.write(line + "\n")

    def _loop(self) -> None:
        while not self._stop.wait(self._interval_s):
            self.write()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self.write()
        self._file.close()
        self._rss.close()


# The running loop, for the signal handler (which gets no context of its own).
_loop_for_dumps: list[asyncio.AbstractEventLoop] = []


def dump_stacks(_signum: int = 0, _frame: FrameType | None = None) -> None:
    """Write every thread's stack and every asyncio task's stack to stderr."""
    out = sys.stderr
    out.write("\n=== Stacks of every thread (SIGUSR1) ===\n")
    out.flush()
    faulthandler.dump_traceback(file=out, all_threads=True)
    out.write("\n=== asyncio tasks ===\n")
    loop = _loop_for_dumps[0] if _loop_for_dumps else None
    tasks = asyncio.all_tasks(loop) if loop is not None and not loop.is_closed() else set()
    if not tasks:
        out.write("(no asyncio tasks)\n")
    for task in sorted(tasks, key=lambda t: t.get_name()):
        out.write(f"\n{task!r}\n")
        for line in await_chain(task):
            out.write(f"  {line}\n")
    out.write("=== end of stacks ===\n")
    out.flush()


def await_chain(task: asyncio.Task[Any]) -> list[str]:
    """Where a task is suspended: each coroutine it awaits, outermost first.

    ``Task.print_stack`` shows only the task's own coroutine; the line that actually
    blocks is usually several awaits deeper.
    """
    lines: list[str] = []
    awaitable: Any = task.get_coro()
    while awaitable is not None and len(lines) < 100:
        frame = getattr(awaitable, "cr_frame", None) or getattr(awaitable, "gi_frame", None)
        if frame is None:
            if isinstance(awaitable, asyncio.Future):
                lines.append(f"waiting on {awaitable!r}")
            break
        code = frame.f_code
        lines.append(f'File "{code.co_filename}", line {frame.f_lineno}, in {code.co_name}')
        awaitable = getattr(awaitable, "cr_await", None) or getattr(awaitable, "gi_yieldfrom", None)
    return lines


def _request_exit(_signum: int, _frame: FrameType | None) -> None:
    # Unwinding (rather than dying) lets profilers such as memray finish their capture.
    raise KeyboardInterrupt


async def _measure(spec: ChildSpec, target: Target, sampler: Sampler,
                   process: psutil.Process) -> dict[str, Any]:
    _loop_for_dumps[:] = [asyncio.get_running_loop()]
    scenario = spec.scenario
    figures: dict[str, Any] = {}

    gc.collect()
    figures["rss_start_mb"] = _rss_mb(process)
    stats = Stats()
    sampler.set_phase(PHASE_RUN, stats)
    started = time.perf_counter()
    await target.run(scenario, stats, asyncio.Event())
    figures["duration_s"] = time.perf_counter() - started
    figures["rss_end_mb"] = _rss_mb(process)
    figures.update(
        messages_sent=stats.messages_sent,
        tokens_received=stats.tokens_received,
        streams_completed=stats.streams_completed,
        errors=stats.errors,
    )
    log.debug("measured run done: %s", figures)
    if spec.measure_quit:
        figures.update(await _quit_under_load(scenario, target, sampler))
    return figures


async def _quit_under_load(scenario: Scenario, target: Target,
                           sampler: Sampler) -> dict[str, Any]:
    """Start the stream again, request quit once tokens flow, time how long run() takes."""
    stats = Stats()
    quit_event = asyncio.Event()
    sampler.set_phase(PHASE_QUIT, stats)
    under_load_after = max(1, min(scenario.expected_tokens // 10, 10_000))
    task = asyncio.create_task(target.run(scenario, stats, quit_event), name="quit-under-load")
    load_deadline = time.perf_counter() + 2.0
    # Stats are plain counters with no event to wait on, so poll them briefly.
    while (  # noqa: ASYNC110
        stats.tokens_received < under_load_after
        and not task.done()
        and time.perf_counter() < load_deadline
    ):
        await asyncio.sleep(0.001)
    if task.done():
        await task
        return {"quit_latency_ms": None,
                "quit_note": "the stream finished before quit could be requested under load"}
    requested = time.perf_counter()
    quit_event.set()
    await task
    latency_ms = (time.perf_counter() - requested) * 1000
    current = asyncio.current_task()
    pending = [t for t in asyncio.all_tasks() if t is not current and not t.done()]
    for leftover in pending:
        leftover.cancel()
    return {
        "quit_latency_ms": latency_ms,
        "quit_tokens_before": stats.tokens_received,
        "pending_after_quit": [repr(t) for t in pending],
    }


def _run_loop(spec: ChildSpec, target: Target, sampler: Sampler,
              process: psutil.Process) -> dict[str, Any]:
    factory = None
    if spec.loop == "uvloop":
        import uvloop  # optional dependency, checked by the runner

        factory = uvloop.new_event_loop
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(_measure(spec, target, sampler, process))


def _write_json_atomically(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data), encoding="utf-8")
    os.replace(tmp, path)


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m stress.child SPEC.json", file=sys.stderr)
        return 2
    spec = ChildSpec.from_json(Path(argv[0]).read_text(encoding="utf-8"))
    level = os.environ.get("STRESS_LOG", "info").upper()
    logging.basicConfig(level=getattr(logging, level, logging.INFO), stream=sys.stderr,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    signal.signal(signal.SIGUSR1, dump_stacks)
    signal.signal(signal.SIGTERM, _request_exit)

    process = psutil.Process()
    sampler = Sampler(spec.samples_path, spec.sample_interval_s)
    try:
        target = load_target(spec.target)()
        sampler.start()
        figures = _run_loop(spec, target, sampler, process)
    except KeyboardInterrupt:
        print("scenario child: stopped by request", file=sys.stderr)
        return 130
    except Exception as exc:
        traceback.print_exc()
        _write_json_atomically(spec.result_path, {
            "error": f"{type(exc).__name__}: {exc}",
        })
        return EXIT_TARGET_RAISED
    finally:
        sampler.set_phase(PHASE_DONE, sampler.stats)
        sampler.close()
    figures["peak_rss_mb"] = max(
        sampler.peak_rss_mb, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    )
    _write_json_atomically(spec.result_path, figures)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
