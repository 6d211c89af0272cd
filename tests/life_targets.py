"""Targets with a lifecycle (setup, teardown, quit, what they leave behind), counters only.

Each streams ``messages`` tokens on the plain counter API; the variants break one rule of the
target contract each.
"""

from __future__ import annotations

import asyncio
import importlib
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import Any

import psutil

from stress.target import Params, Stats

SETUP_S = 1.0  # what a server's start-up costs (uvicorn, a connection pool)
SLOW_QUIT_S = 3.0  # a client that waits out a close timeout before returning


async def stream(params: Params, stats: Stats, quit: asyncio.Event, *,
                 pace: bool = True) -> bool:
    """One conversation's tokens, paced from token_delay_us; False when quit cut it short."""
    delay = params.token_delay_us / 1e6 if pace else 0.0
    started = time.perf_counter()
    for index in range(params.messages):
        if quit.is_set():
            return False
        stats.messages_sent += 1
        stats.tokens_received += 1
        if delay > 0:
            ahead = started + (index + 1) * delay - time.perf_counter()
            if ahead > 0:
                await asyncio.sleep(ahead)
        elif index % 100 == 99:
            await asyncio.sleep(0)
    stats.streams_completed += 1
    return True


class ServerLike:
    """Starts a "server" in setup (1 s, and a task that serves until teardown)."""

    def __init__(self) -> None:
        self.serving: asyncio.Task[None] | None = None

    async def setup(self, params: Params) -> None:
        await asyncio.sleep(SETUP_S)
        self.serving = asyncio.create_task(self._serve(), name="server")

    async def _serve(self) -> None:
        await asyncio.Event().wait()  # accepting connections, until teardown cancels it

    async def teardown(self) -> None:
        assert self.serving is not None
        self.serving.cancel()
        await asyncio.gather(self.serving, return_exceptions=True)
        print("server stopped", file=sys.stderr)

    async def run(self, params: Params, stats: Stats, quit: asyncio.Event) -> None:
        if self.serving is None or self.serving.done():
            raise RuntimeError("run() without a server: setup() was not called")
        await stream(params, stats, quit)


class ServerLeaksTask(ServerLike):
    """A server target whose run() leaves a task of its own behind, past teardown."""

    async def run(self, params: Params, stats: Stats, quit: asyncio.Event) -> None:
        asyncio.get_running_loop().create_task(LeakyTask()._heartbeat(), name="heartbeat")
        await super().run(params, stats, quit)


class ContextServer:
    """The same server, as an async context manager."""

    def __init__(self) -> None:
        self.inner = ServerLike()

    async def __aenter__(self) -> ServerLike:
        await self.inner.setup(None)  # type: ignore[arg-type]
        return self.inner

    async def __aexit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.inner.teardown()


class SetupRaises(ServerLike):
    async def setup(self, params: Params) -> None:
        raise ConnectionRefusedError("the server did not come up on 127.0.0.1:1")


class SetupHangs(ServerLike):
    async def setup(self, params: Params) -> None:
        await asyncio.Event().wait()


class TeardownRaises(ServerLike):
    async def teardown(self) -> None:
        await super().teardown()
        raise OSError("close() failed: the socket was already gone")


class TeardownHangs(ServerLike):
    async def teardown(self) -> None:
        await asyncio.Event().wait()


class Plain:
    """Honest: paces itself, returns on quit at once, leaves nothing behind."""

    async def run(self, params: Params, stats: Stats, quit: asyncio.Event) -> None:
        await stream(params, stats, quit)


class SlowQuit:
    """Returns SLOW_QUIT_S after quit (a websockets client waiting out its close timeout)."""

    async def run(self, params: Params, stats: Stats, quit: asyncio.Event) -> None:
        if not await stream(params, stats, quit):
            await asyncio.sleep(SLOW_QUIT_S)


class QuitHangs:
    """The measured run is fine; the second run (quit under load) never returns."""

    def __init__(self) -> None:
        self.runs = 0

    async def run(self, params: Params, stats: Stats, quit: asyncio.Event) -> None:
        self.runs += 1
        await stream(params, stats, quit)
        if self.runs > 1:
            await asyncio.Event().wait()


class QuitRaises(QuitHangs):
    """The second run (quit under load) raises once quit is set."""

    async def run(self, params: Params, stats: Stats, quit: asyncio.Event) -> None:
        self.runs += 1
        await stream(params, stats, quit)
        if self.runs > 1:
            raise RuntimeError("the stream's close handshake failed")


class LeakyTask:
    """Starts a task of its own in run() and never stops it."""

    async def run(self, params: Params, stats: Stats, quit: asyncio.Event) -> None:
        asyncio.get_running_loop().create_task(self._heartbeat(), name="heartbeat")
        await stream(params, stats, quit)

    async def _heartbeat(self) -> None:
        await asyncio.sleep(3600)


class LibraryTask:
    """Uses a library that leaves a task per loop running (sse-starlette's watcher)."""

    def __init__(self) -> None:
        sys.path.insert(0, str(Path(__file__).parent / "fakelibs"))
        self.library: Any = importlib.import_module("fake_sse")

    async def run(self, params: Params, stats: Stats, quit: asyncio.Event) -> None:
        self.library.ensure_watcher()
        await stream(params, stats, quit)


class LingeringThread:
    """Starts a non-daemon worker thread nobody stops."""

    async def run(self, params: Params, stats: Stats, quit: asyncio.Event) -> None:
        threading.Thread(target=threading.Event().wait, name="lingering-worker").start()
        await stream(params, stats, quit)


class LeftProcess:
    """Starts a subprocess (in a process group of its own) and does not wait for it."""

    async def run(self, params: Params, stats: Stats, quit: asyncio.Event) -> None:
        subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"],  # noqa: ASYNC220
                         start_new_session=True)
        await stream(params, stats, quit)


# A daemon's double fork, done by an intermediate process: the grandchild leaves the group and
# the session (setsid, through start_new_session), prints its pid, and its parent exits at once.
# The daemon does not hold the pipe its pid is read from, or reading would wait for it.
DAEMON = """\
import subprocess, sys
child = subprocess.Popen(["sleep", sys.argv[1]], start_new_session=True,
                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
print(child.pid, flush=True)
"""


def daemonize(seconds: str) -> int:
    """Start ``sleep SECONDS`` as a daemon; its pid. The intermediate is waited for, so the
    daemon is an orphan when this returns."""
    done = subprocess.run([sys.executable, "-c", DAEMON, seconds], capture_output=True,
                          text=True, check=True, timeout=30)
    pid = int(done.stdout)
    print(f"daemon pid {pid}", file=sys.stderr, flush=True)  # for the test, in the log
    return pid


class Daemonizes:
    """Daemonizes a ``sleep 60`` in its first run and never stops it; streams as Plain does."""

    def __init__(self) -> None:
        self.started = False

    async def run(self, params: Params, stats: Stats, quit: asyncio.Event) -> None:
        if not self.started:
            self.started = True
            daemonize("60")
        await stream(params, stats, quit)


class DaemonEnds:
    """Daemonizes a short ``sleep`` and waits until it has ended, and runs a subprocess it
    waits for: nothing is left running (the ended daemon is a zombie until the kit reaps it)."""

    def __init__(self) -> None:
        self.started = False

    async def run(self, params: Params, stats: Stats, quit: asyncio.Event) -> None:
        if not self.started:
            self.started = True
            pid = daemonize("0.2")
            subprocess.run(["true"], check=True)  # noqa: ASYNC221
            while _running(pid):  # noqa: ASYNC110
                await asyncio.sleep(0.02)
        await stream(params, stats, quit)


class DaemonizesThenHangs(QuitHangs):
    """The measured run is fine; quit under load daemonizes a ``sleep 60``, then never
    returns (the kit stops the child, and the daemon with it)."""

    async def run(self, params: Params, stats: Stats, quit: asyncio.Event) -> None:
        if self.runs == 1:
            daemonize("60")
        await super().run(params, stats, quit)


def _running(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


class Unpaced:
    """Streams as fast as it can whatever token_delay_us says."""

    async def run(self, params: Params, stats: Stats, quit: asyncio.Event) -> None:
        await stream(params, stats, quit, pace=False)
