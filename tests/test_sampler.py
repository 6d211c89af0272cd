"""The child's sampler: the loop writes the samples while it runs; a thread covers a blocked loop.

A second thread that wakes costs the loop's thread a GIL hand-over each time, whatever it then
does; so while the loop runs, the thread must not be the one sampling.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from pathlib import Path

from stress.engine.sampler import SAMPLER_THREAD, WATCH_INTERVAL_S, Sampler
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
