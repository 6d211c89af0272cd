"""The child's sampler: the loop writes the samples while it runs; a thread covers a blocked loop.

A second thread that wakes costs the loop's thread a GIL hand-over each time, whatever it then
does; so while the loop runs, the thread must not be the one sampling. And a fast target's
loop is cued by the verifier's pulses, with no timer of the sampler's in its schedule.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from pathlib import Path

from stress.engine import stacks
from stress.engine.sampler import SAMPLER_THREAD, WATCH_INTERVAL_S, Sampler
from stress.streams import VerifiedStreams
from stress.target import Stats

INTERVAL_S = 0.05


class RecordingSampler(Sampler):
    """Notes which thread wrote each sample, and when."""

    def __init__(self, path: Path, interval_s: float) -> None:
        super().__init__(path, interval_s)
        self.writers: list[tuple[float, str]] = []

    def write(self) -> None:
        super().write()
        self.writers.append((time.perf_counter(), threading.current_thread().name))


def run_sampled(tmp_path: Path, *, block_s: float = 0.0,
                run_s: float = 0.0) -> tuple[RecordingSampler, float]:
    sampler = RecordingSampler(tmp_path / "samples.jsonl", INTERVAL_S)
    sampler.start()

    async def measured() -> float:
        sampler.set_phase("run", Stats())
        await asyncio.sleep(run_s)
        blocked_at = time.perf_counter()
        time.sleep(block_s)  # noqa: ASYNC251 - the point: a blocked loop
        await asyncio.sleep(run_s)
        return blocked_at

    blocked_at = asyncio.run(measured())
    sampler.close()
    return sampler, blocked_at


def test_while_the_loop_runs_the_loop_writes_each_sample(tmp_path: Path) -> None:
    sampler, _ = run_sampled(tmp_path, run_s=0.5)
    loop_thread = threading.current_thread().name
    running = sampler.writers[1:-1]  # between set_phase and close
    assert len(running) >= 0.5 / INTERVAL_S  # 10 samples a half-second
    assert {name for _, name in running} == {loop_thread}
    lines = (tmp_path / "samples.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(lines) == len(sampler.writers)
    assert {json.loads(line)["phase"] for line in lines} == {"run"}


def test_a_blocked_loop_is_sampled_by_the_thread_at_the_same_interval(tmp_path: Path) -> None:
    block_s = WATCH_INTERVAL_S + 1.0
    sampler, blocked_at = run_sampled(tmp_path, run_s=0.3, block_s=block_s)
    by_thread = [t for t, name in sampler.writers
                 if name == SAMPLER_THREAD and blocked_at <= t <= blocked_at + block_s]
    # The thread notices within a watch interval (and two sampling intervals), then samples
    # every interval until the loop runs again.
    assert by_thread, sampler.writers
    assert by_thread[0] - blocked_at <= WATCH_INTERVAL_S + 3 * INTERVAL_S
    assert len(by_thread) >= (block_s - WATCH_INTERVAL_S - 3 * INTERVAL_S) / INTERVAL_S * 0.7
    after = [name for t, name in sampler.writers[:-1] if t > blocked_at + block_s + 0.2]
    assert after
    assert set(after) == {threading.current_thread().name}  # the loop took it back


def _stream_fast(streams: VerifiedStreams, seconds: float, start: int) -> int:
    """Runs of 10 tokens from ``start`` on, made and received back to back, as a fast pipeline
    hands them; returns where the next run starts."""
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        for _ in range(100):
            streams.receive(0, "".join(streams.tokens(0, start, 10)))
            start += 10
    return start


def test_a_fast_verified_target_is_sampled_without_a_timer_in_its_loop(tmp_path: Path) -> None:
    sampler = RecordingSampler(tmp_path / "samples.jsonl", INTERVAL_S)
    sampler.start()
    streams = VerifiedStreams(messages=10**9, message_size=8, conversations=1)
    stats = Stats(streams=streams)
    timers: dict[str, object] = {}  # the sampler's timer while streaming, and once idle
    seen: dict[str, float] = {}
    start_end: list[int] = []

    async def measured() -> None:
        loop = asyncio.get_running_loop()
        stacks.watch_loop(loop)
        sampler.set_phase("run", stats)
        started, start = time.perf_counter(), 0
        while time.perf_counter() - started < 0.6:
            start = _stream_fast(streams, 0.01, start)
            await asyncio.sleep(0)  # the loop runs on, with the pulses its only cue
        start_end.append(start)
        timers["streaming"] = sampler._timer
        seen["since_beat"] = time.monotonic() - (stacks._watched.last_beat or 0.0)
        # The pulses stop (the target waits): the loop's timer takes the sampling back.
        seen["idle_from"] = time.perf_counter()
        await asyncio.sleep(WATCH_INTERVAL_S + 0.5)
        timers["idle"] = sampler._timer

    asyncio.run(measured())
    sampler.close()
    report = streams.report()  # every run in order, once: the fast path, as meant
    assert (report.duplicated, report.reordered, report.corrupted) == (0, 0, 0)
    assert report.tokens_received == start_end[0] > 0
    assert timers["streaming"] is None  # nothing of the sampler's in the loop's schedule
    assert seen["since_beat"] < 2 * INTERVAL_S
    assert timers["idle"] is not None
    loop_thread = threading.current_thread().name
    streaming = [name for t, name in sampler.writers[1:] if t < seen["idle_from"]]
    assert len(streaming) >= 0.6 / INTERVAL_S * 0.7
    assert set(streaming) == {loop_thread}  # written on the pulses, by the loop
    idle = [name for t, name in sampler.writers[:-1] if t > seen["idle_from"] + 1.2]
    assert len(idle) >= 0.2 / INTERVAL_S * 0.7
    assert set(idle) == {loop_thread}  # by the timer, set again


def test_the_heartbeat_goes_on_while_the_loop_runs_and_stops_when_it_blocks(
        tmp_path: Path) -> None:
    sampler = Sampler(tmp_path / "samples.jsonl", 3600.0)  # samples rare: the beat is not
    sampler.start()
    ages: list[float] = []

    async def measured() -> None:
        stacks.watch_loop(asyncio.get_running_loop())
        sampler.set_phase("run", Stats())
        await asyncio.sleep(0.5)
        ages.append(time.monotonic() - (stacks._watched.last_beat or 0.0))
        time.sleep(0.5)  # noqa: ASYNC251 - a blocked loop beats no more
        ages.append(time.monotonic() - (stacks._watched.last_beat or 0.0))

    asyncio.run(measured())
    sampler.close()
    assert ages[0] < 2 * stacks.HEARTBEAT_S
    assert ages[1] >= 0.5
