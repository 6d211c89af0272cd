"""One run of the pinned image: :class:`StressContainer`, removed when its `with` block ends.

The engine itself (finding it, building and tagging images) is stress.container.engine; the
docker SDK is reached only through its :func:`~stress.container.engine.docker_sdk`.

    client = connect(EngineConfig())
    with StressContainer(client, RunConfig(results_dir=Path("stress-results"), image=tag)) as box:
        exit_code = box.run()
"""

from __future__ import annotations

import codecs
import contextlib
import os
import re
import signal
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Self

from stress.container.engine import docker_sdk, first_line
from stress.container.leftovers import alive, give_tree, results_owner, session_id, user_ids
from stress.errors import ConfigError, EngineError, ExitCode
from stress.process import on_interrupt
from stress.report.files import open_new_binary_file

RESULTS_MOUNT = "/results"  # where the host's results folder appears inside the container
CONTAINER_LOG = "container.log"  # everything the container printed, kept in the results folder
KEEP_CONTAINERS_ENV = "STRESS_KEEP_CONTAINERS"
RUN_LABEL = "org.asyncio-stress-kit.run"  # every container the kit creates carries it
SESSION_LABEL = "org.asyncio-stress-kit.session"  # host:pid:start of the process that made it
IMAGE_USER = "10001:10001"  # the image's `stress` user: the container's when the host's is root
_MEMORY = re.compile(r"^[1-9][0-9]*[bkmg]?$", re.IGNORECASE)
_POLL_S = 0.2


@dataclass(frozen=True, kw_only=True)
class Mount:
    """A host path shown read-only inside the container (scenario files, a user's target)."""

    host: Path
    container: str


@dataclass(frozen=True, kw_only=True)
class RunConfig:
    """One run of the image: the results folder mounted, no network, bounded memory and time."""

    results_dir: Path
    image: str
    command: tuple[str, ...] = ("run", "--out", RESULTS_MOUNT)  # after the image's entrypoint
    entrypoint: tuple[str, ...] | None = None  # None: the image's (`python -m stress`)
    memory_limit: str = "4g"  # docker's syntax: a number with b, k, m or g
    cpus: float | None = None  # None: as many as the engine has
    timeout_s: float = 3600.0  # then the container is killed and the run counts as hung
    user: str | None = None  # "uid:gid"; None: the host user's unless root (then IMAGE_USER)
    mounts: tuple[Mount, ...] = ()
    environment: Mapping[str, str] = field(default_factory=dict)
    working_dir: str | None = None
    # Every capability is dropped; py-spy needs SYS_PTRACE to read the scenario's memory, so
    # the session adds it for a CPU profile only.
    cap_add: tuple[str, ...] = ()
    pids_limit: int = 2048  # a fork bomb in the target stops here, not at the host's limit
    tmp_size: str = "1g"  # /tmp is a tmpfs (the root filesystem is read-only); counts as memory
    log_max_size: str = "20m"  # the engine's own copy of the output, rotated
    log_max_files: int = 3
    stop_grace_s: float = 30.0  # after an interrupt, how long the runner gets to write results

    def __post_init__(self) -> None:
        if not _MEMORY.match(self.memory_limit):
            raise ConfigError(f"memory limit {self.memory_limit!r}: use a number with b, k, m "
                              "or g, e.g. 4g or 512m")
        if self.cpus is not None and self.cpus <= 0:
            raise ConfigError(f"--cpus {self.cpus}: expected a number of CPUs > 0, e.g. 2 or 1.5")
        if self.timeout_s <= 0:
            raise ConfigError(f"container timeout {self.timeout_s}: must be a positive number "
                              "of seconds")


def container_options(cfg: RunConfig, *, user: str | None,
                      hardened: bool = True) -> dict[str, Any]:
    """The docker SDK's `containers.create` arguments for one run (all but image and name).

    Always hardened in a run; ``hardened=False`` leaves out what the hardening adds (a read-only
    root with a tmpfs /tmp, no capabilities, no-new-privileges, the pids limit, log rotation),
    for ci/hardening_cost.py to measure what it costs. The isolation the run needs (no network,
    the memory and CPU limits) and the mounts stay either way.
    """
    docker = docker_sdk()
    # A list of mounts, each to its own container path: two inputs in one host folder
    # cannot replace each other (a mapping keyed by host path could).
    mounts = [docker.types.Mount(RESULTS_MOUNT, str(cfg.results_dir.resolve()), type="bind",
                                 read_only=False)]
    mounts += [docker.types.Mount(m.container, str(m.host.resolve()), type="bind",
                                  read_only=True) for m in cfg.mounts]
    environment = dict(cfg.environment)
    if user is not None and not user.startswith("0:"):
        # An arbitrary uid has no home in the image; tools that cache under ~ need one.
        environment.setdefault("HOME", "/tmp")
    options: dict[str, Any] = {
        "command": list(cfg.command),
        "entrypoint": list(cfg.entrypoint) if cfg.entrypoint is not None else None,
        "user": user, "mounts": mounts, "environment": environment,
        "working_dir": cfg.working_dir,
        "mem_limit": cfg.memory_limit, "memswap_limit": cfg.memory_limit,  # no swap either
        "nano_cpus": int(cfg.cpus * 1e9) if cfg.cpus is not None else None,
        "network_disabled": True, "network_mode": "none", "init": True, "detach": True,
        "labels": {RUN_LABEL: "1", SESSION_LABEL: session_id()},
    }
    if hardened:
        options.update(
            cap_drop=["ALL"], cap_add=list(cfg.cap_add),
            security_opt=["no-new-privileges:true"], read_only=True,
            tmpfs={"/tmp": f"rw,nosuid,nodev,size={cfg.tmp_size},mode=1777"},
            pids_limit=cfg.pids_limit,
            log_config=docker.types.LogConfig(type="json-file", config={
                "max-size": cfg.log_max_size, "max-file": str(cfg.log_max_files)}),
        )
    elif cfg.cap_add:
        options.update(cap_add=list(cfg.cap_add))
    return options


def host_user() -> str | None:
    if not hasattr(os, "getuid"):
        return None  # Windows: the engine's VM maps file ownership itself
    return f"{os.getuid()}:{os.getgid()}"


class StressContainer:
    """A container that exists only inside the `with` block (unless STRESS_KEEP_CONTAINERS=1).

    run() streams the container's output to the terminal and to results/container.log, and
    returns its exit code, or 4 (crashed or hung) when it was killed for the timeout or memory.
    """

    def __init__(self, client: Any, config: RunConfig, *, hardened: bool = True) -> None:
        self.client = client
        self.config = config
        self.hardened = hardened  # False only to measure what the hardening costs
        self.name = f"stress-kit-{uuid.uuid4().hex[:12]}"
        self._container: Any = None
        self._write_lock = threading.Lock()
        self._hand_back: tuple[int, int] | None = None  # (uid, gid) the results go back to
        self._stop_signal: int | None = None  # set by stop(): forward it, then kill
        self._stop_deadline = 0.0
        self._started = False

    def __enter__(self) -> Self:
        cfg = self.config
        docker = docker_sdk()
        cfg.results_dir.mkdir(parents=True, exist_ok=True)
        reap_stale(self.client)
        user = cfg.user or (self._default_user() if self.hardened else host_user())
        if user == IMAGE_USER:
            for mount in cfg.mounts:
                _check_readable(mount)
            self._hand_back = results_owner(cfg.results_dir)
            give_tree(cfg.results_dir, *user_ids(IMAGE_USER))
        options = container_options(cfg, user=user, hardened=self.hardened)
        try:
            self._container = self.client.containers.create(cfg.image, name=self.name, **options)
        except docker.errors.ImageNotFound as exc:
            self._give_back()
            raise EngineError(f"image {cfg.image} is not on this engine: build it with "
                              "`stress-kit image`") from exc
        except docker.errors.DockerException as exc:
            self._give_back()
            raise EngineError(f"could not create a container from {cfg.image}: "
                              f"{first_line(exc)}") from exc
        except BaseException:
            self._give_back()
            raise
        return self

    def _give_back(self) -> None:
        """The results folder back to its owner (after the image's user wrote in it)."""
        if self._hand_back is not None:
            give_tree(self.config.results_dir, *self._hand_back)
            self._hand_back = None

    def _default_user(self) -> str | None:
        # Rootless engines map the container's root to the host user; any other uid inside
        # would be a subordinate id that cannot write the results folder.
        security = self.client.info().get("SecurityOptions") or []
        if any("name=rootless" in option for option in security):
            return "0:0"
        user = host_user()
        # Never root inside, even for a root host user: the image's user writes the results,
        # which are handed back to their owner when the container is gone.
        return IMAGE_USER if user is None or user.startswith("0:") else user

    def run(self, out: IO[str] | None = None) -> int:
        try:
            return self._run(out if out is not None else sys.stdout)
        except docker_sdk().errors.DockerException as exc:
            raise EngineError(f"container {self.name} from {self.config.image} failed: "
                              f"{first_line(exc)}") from exc

    def _run(self, out: IO[str]) -> int:
        log_path = self.config.results_dir / CONTAINER_LOG
        # Never through a link an earlier run's code planted there; a full disk costs the
        # copy in the log, not the run.
        with open_new_binary_file(log_path) as log_file:
            self._container.start()
            self._started = True
            pump = threading.Thread(target=self._pump, args=(out, log_file), daemon=True)
            pump.start()
            state = self._wait(time.monotonic() + self.config.timeout_s)
            if state is None:
                self._kill()
            pump.join(timeout=10)
            if log_file.dropped_bytes:
                print(f"stress-kit: the disk of {self.config.results_dir} is full: "
                      f"{log_file.dropped_bytes:,} bytes of the container's output are not in "
                      f"{CONTAINER_LOG}", file=out, flush=True)
            problem = self._problem(state, log_path)
            if problem is not None:
                with self._write_lock:
                    log_file.write(f"{problem}\n".encode())
                print(problem, file=out, flush=True)
                return int(ExitCode.CRASHED_OR_HUNG)
            assert state is not None  # no problem means it exited by itself
            code = int(state.get("ExitCode", ExitCode.CRASHED_OR_HUNG))
            if self._stop_signal is not None and code >= 128:
                return int(ExitCode.CRASHED_OR_HUNG)  # killed, not exited: an interrupted run
            return code

    def stop(self, signum: int) -> None:
        """Ask the run to end (from a signal handler): the container gets the same signal, and
        after `stop_grace_s` (or the same signal again: Ctrl-C twice) SIGKILL; run() then
        returns its code. Another signal after the first keeps the grace: a terminal's Ctrl-C
        reaches the whole process group, and a parent such as nox then sends SIGTERM too."""
        if self._stop_signal is None:
            self._stop_signal = signum
            self._stop_deadline = time.monotonic() + self.config.stop_grace_s
        elif signum == self._stop_signal:
            self._stop_deadline = time.monotonic()

    @property
    def started(self) -> bool:
        return self._started

    def _problem(self, state: Mapping[str, Any] | None, log_path: Path) -> str | None:
        if state is None and self._stop_signal is not None:
            return (f"stress-kit: container {self.name} did not stop within "
                    f"{self.config.stop_grace_s:g}s of the interrupt and was killed")
        if state is None:
            return (f"stress-kit: container {self.name} killed after {self.config.timeout_s:g}s "
                    f"(timeout); its output is in {log_path}")
        if state.get("OOMKilled"):
            return (f"stress-kit: container {self.name} exceeded its memory limit "
                    f"({self.config.memory_limit}) and was killed; raise it with --memory")
        return None

    def _wait(self, deadline: float) -> dict[str, Any] | None:
        """The container's final State, or None if the deadline passed first."""
        forwarded: int | None = None
        while time.monotonic() < deadline:
            self._container.reload()
            state: dict[str, Any] = self._container.attrs["State"]
            if state.get("Status") in ("exited", "dead"):
                return state
            if self._stop_signal is not None:
                if forwarded is None:
                    forwarded = self._stop_signal
                    name = signal.Signals(forwarded).name
                    print(f"stress-kit: {name}: stopping container {self.name} (the runner "
                          f"has {self.config.stop_grace_s:g}s to write its results)",
                          file=sys.stderr, flush=True)
                    self._signal(name)
                elif time.monotonic() >= self._stop_deadline:
                    self._kill()
                    return self._final_state()
            time.sleep(_POLL_S)
        return None

    def _final_state(self) -> dict[str, Any] | None:
        with contextlib.suppress(docker_sdk().errors.DockerException):
            self._container.wait(timeout=30)
            self._container.reload()
            return dict(self._container.attrs["State"])
        return None

    def _signal(self, name: str) -> None:
        try:
            self._container.kill(signal=name)
        except docker_sdk().errors.APIError:
            pass  # it exited between the last look and the signal

    def _kill(self) -> None:
        try:
            self._container.kill()
        except docker_sdk().errors.APIError:
            pass  # it exited between the last look and the kill

    def _pump(self, out: IO[str], log_file: IO[bytes]) -> None:
        # Chunks can split a multi-byte character (the reports print ✅), so decode as a stream.
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        for chunk in self._chunks():
            with self._write_lock:
                log_file.write(chunk)
                log_file.flush()
            text = decoder.decode(chunk)
            try:
                out.write(text)
            except UnicodeEncodeError:  # a terminal that cannot show it still gets the rest
                encoding = getattr(out, "encoding", None) or "ascii"
                out.write(text.encode(encoding, errors="replace").decode(encoding))
            out.flush()

    def _chunks(self) -> Iterator[bytes]:
        try:
            yield from self._container.logs(stream=True, follow=True, stdout=True, stderr=True)
        except docker_sdk().errors.DockerException:
            return  # the container went away mid-stream (killed): what arrived is kept

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        container, self._container = self._container, None
        if container is None:
            return
        try:
            if os.environ.get(KEEP_CONTAINERS_ENV) == "1":
                print(f"stress-kit: kept container {self.name} ({KEEP_CONTAINERS_ENV}=1); "
                      f"remove it with `docker rm -f {self.name}`", file=sys.stderr)
                return
            _remove(container)
        finally:
            self._give_back()


def _check_readable(mount: Mount) -> None:
    """The image's user reads the mounts as "others": say so before the run fails inside."""
    mode = mount.host.stat().st_mode
    needed = 0o005 if mount.host.is_dir() else 0o004
    if mode & needed != needed:
        raise ConfigError(f"{mount.host} is not readable by others (mode {mode & 0o777:o}), and "
                          f"the container runs as uid {user_ids(IMAGE_USER)[0]}, not root: "
                          f"chmod o+r{'x' if needed == 0o005 else ''} it, or run the kit as a "
                          "user other than root")


def _remove(container: Any) -> None:
    """Remove a container, retrying an interrupt of the removal itself: none is left behind."""
    for _ in range(3):
        try:
            container.remove(force=True)
            return
        except docker_sdk().errors.NotFound:
            return  # already gone
        except KeyboardInterrupt:
            continue


# -- ownership and leftovers ----------------------------------------------------------------


def reap_stale(client: Any, log: Callable[[str], None] | None = None) -> list[str]:
    """Remove the kit's containers whose session process is gone (killed with SIGKILL, say)."""
    docker = docker_sdk()
    say = log or (lambda text: print(text, file=sys.stderr, flush=True))
    removed: list[str] = []
    try:
        found = client.containers.list(all=True, filters={"label": RUN_LABEL})
    except docker.errors.DockerException:
        return removed
    for container in found:
        session = (container.labels or {}).get(SESSION_LABEL)
        if session is None or alive(session):
            continue
        with contextlib.suppress(docker.errors.DockerException):
            container.remove(force=True)
            removed.append(container.name)
            say(f"stress-kit: removed container {container.name} left by a session that "
                f"is gone ({session})")
    return removed


def run_in_container(client: Any, config: RunConfig) -> int:
    """Run once and always clean up; the exit code is the container's (4 on timeout or OOM).

    SIGINT and SIGTERM (in the main thread) stop the container with a grace period, so the
    runner inside writes its interrupted results, and the runner's code is returned.
    """
    with StressContainer(client, config) as box, _forwarding(box):
        return box.run()


@contextlib.contextmanager
def _forwarding(box: StressContainer) -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: object) -> None:
        if not box.started:
            raise KeyboardInterrupt  # before the start: __exit__ removes the container
        box.stop(signum)

    with on_interrupt(handler):
        yield
