"""One scenario in a fresh interpreter: ``python -m stress.engine.child SPEC.json``.

The parent (stress.engine.supervise) owns the deadlines. This process measures the run,
streams :class:`~stress.engine.protocol.Sample` lines to the samples file (so a killed child
still leaves its counts behind), and writes its :class:`~stress.engine.protocol.ChildFigures`
to the result file. On SIGUSR1 it dumps the stacks of every thread and every asyncio task to
stderr (the scenario log) so a hang can be diagnosed before it is killed; on SIGUSR2,
faulthandler's dump of every thread (stress.engine.stacks).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import resource
import signal
import sys
import time
import traceback
from dataclasses import replace
from pathlib import Path
from types import FrameType

import psutil

from stress.engine.protocol import ChildFigures, ChildSpec, QuitFigures, RunFigures
from stress.engine.sampler import Sampler, rss_mb
from stress.engine.stacks import install_dump_handlers, watch_loop
from stress.scenario import Scenario
from stress.target import Stats, Target, load_target

log = logging.getLogger("stress.engine.child")

# Exit code when the target itself raised: the parent reports it as a crash.
EXIT_TARGET_RAISED = 3
QUIT_LOAD_DEADLINE_S = 2.0  # how long quit-under-load waits for tokens to flow
# STRESS_SAMPLER=off (an instruction count, stress.engine.instructions): no sampler thread,
# no sampler timer, no heartbeat, so nothing in the child runs by the clock.
BACKGROUND = os.environ.get("STRESS_SAMPLER", "on") != "off"


def _request_exit(_signum: int, _frame: FrameType | None) -> None:
    # Unwinding (rather than dying) lets profilers such as memray finish their capture.
    raise KeyboardInterrupt


async def _measure(spec: ChildSpec, target: Target, sampler: Sampler,
                   process: psutil.Process) -> ChildFigures:
    if BACKGROUND:
        watch_loop(asyncio.get_running_loop())
    gc.collect()
    rss_start = rss_mb(process)
    stats = Stats()
    sampler.set_phase("run", stats)
    started = time.perf_counter()
    await target.run(spec.scenario, stats, asyncio.Event())
    run = RunFigures(
        duration_s=time.perf_counter() - started, rss_start_mb=rss_start,
        rss_end_mb=rss_mb(process), messages_sent=stats.messages_sent,
        tokens_received=stats.tokens_received, streams_completed=stats.streams_completed,
        errors=stats.errors,
    )
    log.debug("measured run done: %s", run)
    quit_ = await quit_under_load(spec.scenario, target, sampler) if spec.measure_quit else None
    return ChildFigures(run=run, quit=quit_)


async def quit_under_load(scenario: Scenario, target: Target, sampler: Sampler) -> QuitFigures:
    """Start the stream again, request quit once tokens flow, time how long run() takes."""
    stats = Stats()
    quit_event = asyncio.Event()
    sampler.set_phase("quit", stats)
    under_load_after = max(1, min(scenario.expected_tokens // 10, 10_000))
    task = asyncio.create_task(target.run(scenario, stats, quit_event), name="quit-under-load")
    load_deadline = time.perf_counter() + QUIT_LOAD_DEADLINE_S
    # Stats are plain counters with no event to wait on, so poll them briefly.
    while (  # noqa: ASYNC110
        stats.tokens_received < under_load_after
        and not task.done()
        and time.perf_counter() < load_deadline
    ):
        await asyncio.sleep(0.001)
    if task.done():
        await task
        return QuitFigures(latency_ms=None,
                           note="the stream finished before quit could be requested under load")
    requested = time.perf_counter()
    quit_event.set()
    await task
    latency_ms = (time.perf_counter() - requested) * 1000
    current = asyncio.current_task()
    pending = [t for t in asyncio.all_tasks() if t is not current and not t.done()]
    for leftover in pending:
        leftover.cancel()
    return QuitFigures(latency_ms=latency_ms, tokens_before=stats.tokens_received,
                       pending=tuple(repr(t) for t in pending))


def _run_loop(spec: ChildSpec, target: Target, sampler: Sampler,
              process: psutil.Process) -> ChildFigures:
    factory = None
    if spec.loop == "uvloop":
        import uvloop  # optional dependency, checked by the command

        factory = uvloop.new_event_loop
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(_measure(spec, target, sampler, process))


def _write_atomically(path: Path, figures: ChildFigures) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(figures.to_json(), encoding="utf-8")
    os.replace(tmp, path)


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m stress.engine.child SPEC.json", file=sys.stderr)
        return 2
    spec = ChildSpec.from_json(Path(argv[0]).read_text(encoding="utf-8"))
    level = os.environ.get("STRESS_LOG", "info").upper()
    logging.basicConfig(level=getattr(logging, level, logging.INFO), stream=sys.stderr,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    install_dump_handlers()  # before the target can replace sys.stderr
    signal.signal(signal.SIGTERM, _request_exit)

    process = psutil.Process()
    sampler = Sampler(spec.samples_path, spec.sample_interval_s, background=BACKGROUND)
    try:
        target = load_target(spec.target)()
        sampler.start()
        figures = _run_loop(spec, target, sampler, process)
    except KeyboardInterrupt:
        print("scenario child: stopped by request", file=sys.stderr)
        return 130
    except Exception as exc:
        traceback.print_exc()
        _write_atomically(spec.result_path, ChildFigures(error=f"{type(exc).__name__}: {exc}"))
        return EXIT_TARGET_RAISED
    finally:
        sampler.set_phase("done", sampler.stats)
        sampler.close()
    assert figures.run is not None
    peak = max(sampler.peak_rss_mb, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    _write_atomically(spec.result_path, replace(figures, run=replace(figures.run,
                                                                     peak_rss_mb=peak)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
