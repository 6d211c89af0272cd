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
import dataclasses
import gc
import logging
import math
import os
import resource
import signal
import sys
import threading
import time
import traceback
from dataclasses import dataclass, replace
from pathlib import Path
from types import FrameType
from typing import Any

import psutil

from stress.config.scenario import Scenario
from stress.engine.harness import HarnessParams, harness_for
from stress.engine.leftovers import (
    Checkpoint,
    Leftovers,
    Swept,
    become_subreaper,
    child_pids,
    live_threads,
    sweep_processes,
    take_tasks,
)
from stress.engine.lifecycle import Lifecycle, SetupFailed, describe_error, warm_up
from stress.engine.protocol import ChildFigures, ChildSpec, QuitFigures, RunFigures
from stress.engine.sampler import Sampler, rss_mb
from stress.engine.stacks import install_dump_handlers, watch_loop
from stress.engine.teardown import die_with_parent
from stress.profiling.base import wait_until_attached
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
    # --- lifecycle (stress.engine.lifecycle): setup and warm-up, outside the measured window
    scenario = spec.scenario
    # The params a target is handed (and may keep from setup): their tokens always come from
    # the current phase's verifier. The verifier's stream strings are the harness's memory,
    # made before the baseline.
    params, stats = harness_for(scenario)
    life = Lifecycle(target)
    sampler.set_phase("setup", stats)
    try:
        target = await life.setup(params)
        await warm_up(scenario, target)
    except Exception as exc:
        raise SetupFailed(describe_error(exc)) from exc
    stats = params.new_phase()  # the measured run's own verifier
    # What lives now is the kit's or the target's set-up state (a server): not a leftover.
    baseline = _Baseline(tasks=frozenset(asyncio.all_tasks()), pids=child_pids(),
                         module=spec.target.partition(":")[0], ignore=scenario.ignore_tasks,
                         judged=not life.owns_state)
    # --- end lifecycle
    # Setup's garbage goes before the memory baseline: the young generations, where what
    # setup made and dropped is. Not a full collection: after one, the reference pipeline's
    # run measured about 1% slower, wherever in the child it ran (ci/standalone_ratio.py, 41
    # pairs each: 0.977..0.982 of standalone after one, 0.984..0.995 without or with this one).
    gc.collect(1)
    rss_start = rss_mb(process)
    sampler.set_phase("run", stats)
    started = time.perf_counter()
    try:
        await target.run(params, stats, asyncio.Event())
    except Exception:
        await _teardown_quietly(life, sampler)
        raise
    duration_s = time.perf_counter() - started
    counts, odd = whole_counters(stats)
    run = RunFigures(duration_s=duration_s, rss_start_mb=rss_start, rss_end_mb=rss_mb(process),
                     **counts, odd_counters=odd)
    log.debug("measured run done: %s", run)
    assert stats.streams is not None
    # --- lifecycle: each later phase adds to the measured figures, written as they stand so
    # that a hang in quit or teardown leaves them for the parent.
    figures = ChildFigures(run=run, streams=stats.streams.report(),
                           leftovers=(await baseline.take("run"),))
    _write_atomically(spec.result_path, figures)
    if spec.measure_quit:
        try:
            quit_ = await quit_under_load(scenario, params, target, sampler)
        except Exception:
            await _teardown_quietly(life, sampler)
            raise
        figures = replace(figures, quit=quit_,
                          leftovers=(*figures.leftovers, await baseline.take("quit")))
        _write_atomically(spec.result_path, figures)
    sampler.set_phase("teardown", Stats())
    try:
        await life.teardown()
    except Exception as exc:
        figures = replace(figures, teardown_error=describe_error(exc))
    everything = dataclasses.replace(baseline, tasks=frozenset(), pids=frozenset(), judged=True)
    return replace(figures, leftovers=(*figures.leftovers, await everything.take("teardown")))


@dataclass(frozen=True, kw_only=True)
class _Baseline:
    """What was alive when the measured window opened; anything else later is a leftover."""

    tasks: frozenset[asyncio.Task[Any]]
    pids: frozenset[int]
    module: str  # the target's module: its tasks are "the target's"
    ignore: tuple[str, ...]
    judged: bool  # False: observe only, the target's teardown is still to come

    async def take(self, checkpoint: Checkpoint) -> Leftovers:
        tasks = await take_tasks(exclude=self.tasks, target_module=self.module,
                                 ignore=self.ignore, cancel=self.judged)
        swept = sweep_processes(self.pids) if self.judged else Swept()
        return Leftovers(checkpoint=checkpoint, tasks=tasks, processes=swept.children,
                         orphans=swept.orphans, judged=self.judged)


async def _teardown_quietly(life: Lifecycle, sampler: Sampler) -> None:
    """Teardown after a run raised: the run's error is the one reported."""
    sampler.set_phase("teardown", Stats())
    try:
        await life.teardown()
    except Exception:
        log.exception("teardown after the failed run raised too")
# --- end lifecycle


COUNTERS = ("messages_sent", "tokens_received", "streams_completed", "errors")


def whole_counters(stats: Stats) -> tuple[dict[str, int], tuple[str, ...]]:
    """The target's counters as whole numbers, and each one that was not ("name=value"): a
    float or any other value is the judge's to report, never truncated silently."""
    counts: dict[str, int] = {}
    odd: list[str] = []
    for name in COUNTERS:
        value = getattr(stats, name)
        if isinstance(value, int) and not isinstance(value, bool):
            counts[name] = value
        else:
            odd.append(f"{name}={value!r}"[:80])
            counts[name] = int(value) if isinstance(value, float) and math.isfinite(value) \
                else 0
    return counts, tuple(odd)


async def quit_under_load(scenario: Scenario, params: HarnessParams, target: Target,
                          sampler: Sampler) -> QuitFigures:
    """Start the stream again, request quit once tokens flow, time how long run() takes.

    What it leaves running is recorded by the caller (stress.engine.leftovers), before any
    task is cancelled.
    """
    stats = params.new_phase()
    quit_event = asyncio.Event()
    sampler.set_phase("quit", stats)
    under_load_after = max(1, min(scenario.expected_tokens // 10, 10_000))
    task = asyncio.create_task(target.run(params, stats, quit_event), name="quit-under-load")
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
    return QuitFigures(latency_ms=latency_ms, tokens_before=stats.tokens_received)


def _run_loop(spec: ChildSpec, target: Target, sampler: Sampler,
              process: psutil.Process) -> ChildFigures:
    factory = None
    if spec.loop == "uvloop":
        import uvloop  # optional dependency, checked by the command

        factory = uvloop.new_event_loop
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(_measure(spec, target, sampler, process))


# The figures last written: an error after the measured run is added to them (lifecycle).
_written: list[ChildFigures] = []


def _write_atomically(path: Path, figures: ChildFigures) -> None:
    _written[:] = [figures]
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(figures.to_json(), encoding="utf-8")
    os.replace(tmp, path)


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m stress.engine.child SPEC.json", file=sys.stderr)
        return 2
    die_with_parent()  # also below a wrapper (perf): a killed runner leaves no child behind
    # The target's daemonized subprocesses are re-parented here, not to init: the leftover
    # checks see them (Linux; elsewhere only what stays below this process is seen).
    become_subreaper()
    spec = ChildSpec.from_json(Path(argv[0]).read_text(encoding="utf-8"))
    level = os.environ.get("STRESS_LOG", "info").upper()
    logging.basicConfig(level=getattr(logging, level, logging.INFO), stream=sys.stderr,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    install_dump_handlers()  # before the target can replace sys.stderr
    signal.signal(signal.SIGTERM, _request_exit)

    process = psutil.Process()
    kit_threads = {t.ident for t in threading.enumerate() if t.ident is not None}
    sampler = Sampler(spec.samples_path, spec.sample_interval_s, background=BACKGROUND)
    try:
        target = load_target(spec.target)()
        wait_until_attached()  # a profiler attaching from outside (py-spy) is there first
        sampler.start()
        figures = _run_loop(spec, target, sampler, process)
    except KeyboardInterrupt:
        print("scenario child: stopped by request", file=sys.stderr)
        return 130
    except SetupFailed as exc:
        _write_atomically(spec.result_path, ChildFigures(setup_error=str(exc)))
        return EXIT_TARGET_RAISED
    except Exception as exc:
        traceback.print_exc()
        error = f"{type(exc).__name__}: {exc}"
        so_far = _written[0] if _written else ChildFigures()
        _write_atomically(spec.result_path, replace(so_far, error=error))
        return EXIT_TARGET_RAISED
    finally:
        sampler.set_phase("done", sampler.stats)
        sampler.close()
    measured = figures.run
    assert measured is not None
    peak = max(sampler.peak_rss_mb, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    # --- lifecycle: what outlived the loop keeps the interpreter from exiting.
    swept = sweep_processes(())
    at_exit = Leftovers(checkpoint="exit", threads=live_threads(kit_threads),
                        processes=swept.children, orphans=swept.orphans)
    figures = replace(figures, leftovers=(*figures.leftovers, at_exit))
    _write_atomically(spec.result_path, replace(figures, run=replace(measured,
                                                                     peak_rss_mb=peak)))
    if at_exit.threads:
        # Interpreter shutdown would join them forever: leave now, the verdict is written.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)
    # --- end lifecycle
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
