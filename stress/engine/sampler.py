"""The child's sampler: one :class:`Sample` line per interval, written by the event loop while
it runs and by a thread when it does not.

It keeps sampling when the event loop is blocked, so a hung or killed child still leaves its
counts and RSS behind for the parent.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import threading
import time
from pathlib import Path
from typing import TextIO

import psutil

from stress.engine import stacks
from stress.engine.protocol import Phase, Sample
from stress.target import Stats

_MB = 1024 * 1024

SAMPLER_THREAD = "stress-sampler"  # the sampler thread's name, as stack dumps show it

# How often the sampler thread wakes while the loop writes the samples itself. Each wake-up of
# a second thread costs the loop's thread time (the thread must take the GIL from it: futile
# wake-ups until the 5 ms switch interval forces a hand-over), whatever the thread then does:
# sampling from the thread at 10 Hz costs a busy pipeline about 7%.
WATCH_INTERVAL_S = 1.0
# Pulses from the verifier within one timer period that make the timer unnecessary: twice its
# rate, so the samples and the heartbeat keep their pace from the pulses alone.
PULSES_PER_TICK = 2


def _whole(value: object) -> int:
    """A counter for the samples file: a target's float or junk must not stop the sampler
    (the judge reports it from the final figures)."""
    if isinstance(value, int):
        return int(value)
    return int(value) if isinstance(value, float) and math.isfinite(value) else 0


def rss_mb(process: psutil.Process) -> float:
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
            return rss_mb(self._process)
        return int(os.pread(self._statm, 256, 0).split()[1]) * self._page_mb

    def close(self) -> None:
        if self._statm is not None:
            os.close(self._statm)
            self._statm = None


class Sampler:
    """One JSON line per interval, written by the loop while it runs and by a thread when not.

    While the loop runs, the loop writes each sample, so no other thread wakes and takes the
    GIL. It does so on one of two cues:

    * a **pulse** from the verifier (``VerifiedStreams.on_batch``), every batch of runs it
      receives: at a fast target's pace these come many times a tick, and then they are the
      only cue. No timer stays in the loop's schedule, where any timer costs an unpaced
      pipeline about 1% (asyncio reads the clock on every iteration while one is due);
    * otherwise a **timer** on the loop, every tick (the sampling interval, at most
      HEARTBEAT_S), which also beats the heartbeat that stack dumps read.

    A thread watches: every WATCH_INTERVAL_S it looks at when the loop last gave a cue. When
    the loop has missed its turn (blocked, busy without pulses, or not yet running) the thread
    writes the samples itself, every interval, and asks the loop to start its timer again
    (the pulses may have stopped), until the loop writes again. So the counters and RSS keep
    coming while the loop is blocked, at the same rate, and a killed child leaves a sample at
    most an interval old (a watch interval when the loop has just blocked).
    """

    def __init__(self, path: Path, interval_s: float, *, background: bool = True) -> None:
        # background False: no thread and no timer, only the samples set_phase writes (an
        # instruction count must not depend on how long the run took).
        self._background = background
        self._file: TextIO = path.open("a", encoding="utf-8", buffering=1)
        self._interval_s = interval_s
        self._tick_s = min(interval_s, stacks.HEARTBEAT_S)
        self._rss = _RssReader()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=SAMPLER_THREAD, daemon=True)
        self._timer: asyncio.TimerHandle | None = None
        self._timer_loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None  # the thread of the loop the sampler follows
        self._pulses = 0  # pulses since the timer was set
        self._cued = time.perf_counter()  # when the loop last gave a cue (or was followed)
        self._written = -math.inf  # when the last sample was written, by either thread
        self.stats = Stats()
        self.phase: Phase = "start"
        self.t0 = time.perf_counter()
        self.peak_rss_mb = 0.0

    def start(self) -> None:
        if self._background:
            self._thread.start()

    def set_phase(self, phase: Phase, stats: Stats) -> None:
        with self._lock:
            previous = self.stats.streams
            if previous is not None and previous is not stats.streams:
                previous.on_batch = None
            self.phase = phase
            self.stats = stats
            if self._background and stats.streams is not None:
                stats.streams.on_batch = self.pulse
            if phase == "run":
                self.t0 = time.perf_counter()
        self.write()
        self._follow_running_loop()

    def write(self) -> None:
        with self._lock:
            self._written = time.perf_counter()
            rss = self._rss.read()
            self.peak_rss_mb = max(self.peak_rss_mb, rss)
            # The verifier's counts when the target uses it; else the target's own counters.
            sent, received, completed, errors = map(_whole, self.stats.counts())
            line = Sample(
                phase=self.phase,
                t=round(self._written - self.t0, 4),
                rss_mb=round(rss, 3),
                messages_sent=sent,
                tokens_received=received,
                streams_completed=completed,
                errors=errors,
                verified=self.stats.verified,
            ).to_json()
            self._file.write(line + "\n")

    def pulse(self) -> None:
        """The verifier's cue, every batch of runs received: the loop is running."""
        if threading.get_ident() != self._loop_thread:
            return  # a target's own thread handed the tokens: it says nothing about the loop
        self._pulses += 1
        self._cue(time.perf_counter())

    def _cue(self, now: float) -> None:
        """On the loop's thread: the loop runs. A beat, and the sample when one is due."""
        self._cued = now
        stacks.heartbeat()
        if now - self._written >= self._interval_s:
            self.write()

    def _follow_running_loop(self) -> None:
        """Called on the loop's thread: the loop takes over the writing while it runs."""
        if not self._background:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # no loop here (the final sample): the thread covers the gaps
        if loop is not self._timer_loop:
            self._timer_loop, self._timer = loop, None
            self._loop_thread = threading.get_ident()
            self._cue(time.perf_counter())
            self._set_timer()

    def _set_timer(self) -> None:
        """On the loop's thread: the timer cues the loop again (unless it already does)."""
        if self._timer is None and self._timer_loop is not None and not self._stop.is_set():
            self._pulses = 0
            self._timer = self._timer_loop.call_later(self._tick_s, self._tick)

    def _tick(self) -> None:
        self._timer = None
        pulsed = self._pulses >= PULSES_PER_TICK
        self._cue(time.perf_counter())
        if not pulsed:  # else the pulses cue the loop often enough: no timer in its schedule
            self._set_timer()

    def _loop(self) -> None:
        wait_s = WATCH_INTERVAL_S
        while not self._stop.wait(wait_s):
            now = time.perf_counter()
            # Twice the tick: a busy loop's timer runs a little late, and is not blocked.
            if now - self._cued < 2 * self._tick_s:
                wait_s = WATCH_INTERVAL_S  # the loop writes: watch
                continue
            # The loop missed its turn: sample from here, every interval, and have the loop
            # set its timer again when it runs (its pulses may have stopped).
            loop = self._timer_loop
            if self._timer is None and loop is not None:
                with contextlib.suppress(RuntimeError):  # the loop has closed
                    loop.call_soon_threadsafe(self._set_timer)
            if now - self._written >= self._interval_s:
                self.write()
            wait_s = min(self._interval_s, WATCH_INTERVAL_S)

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=2)
        # Its loop has stopped: the timer never fires, and no pulse is the loop's.
        self._timer = self._timer_loop = self._loop_thread = None
        if self.stats.streams is not None:
            self.stats.streams.on_batch = None
        self.write()
        self._file.close()
        self._rss.close()
