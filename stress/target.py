"""The contract between the harness and a system under test.

A target is named on the command line as ``module:attr``. ``attr`` is a callable
returning an object with ``async def run(params, stats, quit)``:

* ``params`` exposes the scenario's fields by their YAML names (``messages``,
  ``message_size``, ``token_delay_us``, ``channel_buffer``, ``consumer_delay_us``,
  ``conversations``, ``error_rate``).
* ``stats`` is a :class:`Stats`; the target increments its counters.
* ``quit`` is an :class:`asyncio.Event` the harness sets to request shutdown;
  ``run`` must then return promptly and leave no task pending.

The reference pipeline (``stress.pipeline:reference``) implements exactly this
and is not special-cased anywhere in the harness.
"""

from __future__ import annotations

import asyncio
import importlib
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from stress.errors import ConfigError

DEFAULT_TARGET = "stress.pipeline:reference"


class Params(Protocol):
    """What a target may read from a scenario (the YAML field names)."""

    @property
    def messages(self) -> int: ...
    @property
    def message_size(self) -> int: ...
    @property
    def token_delay_us(self) -> float: ...
    @property
    def channel_buffer(self) -> int: ...
    @property
    def consumer_delay_us(self) -> float: ...
    @property
    def conversations(self) -> int: ...
    @property
    def error_rate(self) -> float: ...


@dataclass
class Stats:
    """Counters a target increments while it runs (deliberately mutable)."""

    messages_sent: int = 0
    tokens_received: int = 0
    streams_completed: int = 0
    errors: int = 0


class Target(Protocol):
    async def run(self, params: Params, stats: Stats, quit: asyncio.Event) -> None: ...


TargetFactory = Callable[[], Target]


def load_target(spec: str) -> TargetFactory:
    """Resolve ``module:attr`` to the target factory, with errors a user can act on."""
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise ConfigError(
            f"--target {spec!r}: expected 'module:attr', "
            f"for example {DEFAULT_TARGET!r}"
        )
    # The project's folder, as `python -m` has it: the `stress-kit` script does not, and a
    # target is named from the folder the command runs in.
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(
            f"--target {spec!r}: cannot import module {module_name!r} ({exc}); "
            "check the name and that it is on PYTHONPATH"
        ) from exc
    factory = getattr(module, attr, None)
    if factory is None or not callable(factory):
        raise ConfigError(
            f"--target {spec!r}: module {module_name!r} has no callable {attr!r}"
        )
    return factory  # type: ignore[no-any-return]
