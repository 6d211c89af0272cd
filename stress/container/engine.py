"""The container engine: finding it, checking it answers and is new enough, and the image
operations (build with no network, look up, tag, read a registry digest).

With stress.container.driver (one run of the image), the only code that imports the docker SDK,
always through :func:`docker_sdk`. Every engine failure becomes one :class:`EngineError` line
that names the address tried and the fix.

    client = connect(EngineConfig())
"""

from __future__ import annotations

import os
import re
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from stress.errors import EngineError

DEFAULT_SOCKET = "unix:///var/run/docker.sock"
# Docker 20.10's API: the oldest engine the kit is tested on (Debian's docker.io in bookworm).
MINIMUM_API = (1, 41)


def docker_sdk() -> Any:
    try:
        import docker  # the SDK is optional: only the container path needs it
    except ModuleNotFoundError as exc:
        raise EngineError(
            "the docker SDK is not installed: pip install 'asyncio-stress-kit[container]', "
            "or use --engine host"
        ) from exc
    return docker


# -- engine ---------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class EngineConfig:
    """Which engine to talk to. Only docker's API is spoken (podman serves it too)."""

    name: Literal["docker"] = "docker"
    url: str | None = None  # None: DOCKER_HOST, else the current docker context, else the socket
    timeout_s: float = 60.0

    def address(self) -> str:
        return self.url or engine_url()


def engine_url() -> str:
    """The engine address used: DOCKER_HOST, else the current docker context, else the socket."""
    if os.environ.get("DOCKER_HOST"):
        return os.environ["DOCKER_HOST"]
    try:
        context = docker_sdk().context.ContextAPI.get_current_context()
        host = context.Host if context is not None else None
    except Exception:  # a broken ~/.docker/config.json must not hide the real error
        host = None
    return str(host or DEFAULT_SOCKET)


def first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:240]


def connect(config: EngineConfig | None = None) -> Any:
    """A docker client that answered a ping and is new enough, or EngineError saying what to do."""
    config = config or EngineConfig()
    docker = docker_sdk()
    url = config.address()
    refused = _unix_socket_refusal(url)
    if refused is not None:
        raise NoEngineError(url, refused)
    try:
        if config.url is None and os.environ.get("DOCKER_HOST"):
            # from_env also honours DOCKER_TLS_VERIFY and DOCKER_CERT_PATH.
            client = docker.from_env(timeout=int(config.timeout_s), use_ssh_client=False)
        else:
            client = docker.DockerClient(base_url=url, timeout=int(config.timeout_s))
        client.ping()
        version = client.version()
    except docker.errors.DockerException as exc:
        raise NoEngineError(url, first_line(exc)) from exc
    check_version(url, str(version.get("ApiVersion", "0")), str(version.get("Version", "?")))
    return client


def check_version(url: str, api: str, version: str) -> None:
    found = tuple(int(part) for part in re.findall(r"\d+", api)[:2])
    if found < MINIMUM_API:
        need = ".".join(map(str, MINIMUM_API))
        raise EngineError(f"the engine at {url} is Docker {version} (API {api}); the kit needs "
                          f"API {need} or newer (Docker 20.10+): upgrade it, or use --engine host")


class NoEngineError(EngineError):
    """No engine answered: which address was tried, why, and the three ways out."""

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(f"no container engine answered at {url} ({reason}): start Docker "
                         "(dockerd, or Docker Desktop), set DOCKER_HOST to a running engine, "
                         "or use --engine host")
        self.url = url
        self.reason = reason


def _unix_socket_refusal(url: str) -> str | None:
    """Why a unix socket cannot be reached, asked directly: the SDK leaks the socket it tried."""
    if not url.startswith(("unix://", "http+unix://")):
        return None
    path = url.split("://", 1)[1]
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(5)
        try:
            probe.connect(path)
        except OSError as exc:
            return exc.strerror or type(exc).__name__
    return None


def registry_digest(client: Any, reference: str) -> str:
    """`name:tag@sha256:...`: the tag's current digest, asked of the registry via the engine."""
    name = reference.split("@", 1)[0]
    try:
        data = client.images.get_registry_data(name)
    except docker_sdk().errors.DockerException as exc:
        raise EngineError(
            f"no registry answered for {name} ({first_line(exc)}): run `stress-kit pin` "
            "on a machine that can pull images"
        ) from exc
    return f"{name}@{data.id}"


# -- images ---------------------------------------------------------------------------------


def image_id(client: Any, tag: str) -> str | None:
    """The id of the image tagged `tag` on this engine, or None."""
    try:
        return str(client.images.get(tag).id)
    except docker_sdk().errors.ImageNotFound:
        return None
    except docker_sdk().errors.DockerException as exc:
        raise EngineError(f"could not look up image {tag}: {first_line(exc)}") from exc


def add_tag(client: Any, image: str, tag: str) -> None:
    """Give an image one more tag (`name:tag`; a registry's port is not the tag)."""
    repository, name = tag, "latest"
    if ":" in tag.rsplit("/", maxsplit=1)[-1]:
        repository, _, name = tag.rpartition(":")
    try:
        client.images.get(image).tag(repository, name)
    except docker_sdk().errors.DockerException as exc:
        raise EngineError(f"could not tag {image} as {tag}: {first_line(exc)}") from exc


def build(client: Any, *, context: Path, tag: str, build_args: Mapping[str, str],
          timeout_s: float = 1800.0, log: list[str] | None = None) -> str:
    """Build `context` (its Dockerfile) with no network and tag it; returns the image id.

    The build's output goes into `log` as it arrives; on failure EngineError carries the
    engine's one-line reason.
    """
    docker = docker_sdk()
    lines = log if log is not None else []
    found = ""
    error = ""
    try:
        chunks = client.api.build(
            path=str(context), tag=tag, buildargs=dict(build_args), network_mode="none",
            pull=False, rm=True, forcerm=True, decode=True, timeout=int(timeout_s),
            use_config_proxy=False,  # no proxy variables baked into the image
        )
        for chunk in chunks:
            text = chunk.get("stream") or chunk.get("status") or ""
            if text:
                lines.append(text)
            if "error" in chunk:
                error = str(chunk["error"]).strip()
            found = chunk.get("aux", {}).get("ID", found)
    except docker.errors.DockerException as exc:
        error = first_line(exc)
    if error:
        raise EngineError(f"image build of {tag} failed: {error}")
    return found or str(client.images.get(tag).id)


# -- run ------------------------------------------------------------------------------------
