"""The contract between the harness and a system under test.

A target is named on the command line as ``module:attr``. ``attr`` is a callable
returning an object with ``async def run(params, stats, quit)``:

* ``params`` exposes the scenario's fields by their YAML names (``messages``,
  ``message_size``, ``token_delay_us``, ``channel_buffer``, ``consumer_delay_us``,
  ``conversations``, ``error_rate``, ``duration_s``) and the harness's tokens:
  ``params.token(conversation, index)`` / ``params.tokens(conversation, start, count)``
  make them (each ``message_size`` characters, its identity encoded in it), and
  ``params.fail_at(conversation)`` says where the scenario makes a conversation fail (None:
  it does not).
* ``stats`` is a :class:`Stats`. The consumer side hands back what arrived with
  ``stats.receive(conversation, text)`` (one token or several concatenated), then
  ``stats.end(conversation)`` or ``stats.fail(conversation, error)``: the harness then checks
  every token (lost, duplicated, reordered, corrupted, short streams, errors against the
  injection) and its latency. A target that only increments the counters
  (``messages_sent``, ``tokens_received``, ``streams_completed``, ``errors``) still runs;
  its counts are its own word and the report says the stream was not verified.
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
from typing import Protocol

from stress.errors import ConfigError
from stress.streams import VerifiedStreams

DEFAULT_TARGET = "stress.pipeline:reference"


class ScenarioFields(Protocol):
    """A scenario's fields by their YAML names: what a harness is built from."""

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


class Params(ScenarioFields, Protocol):
    """What a target may read: the scenario's fields, the harness's tokens and failure plan."""

    @property
    def duration_s(self) -> float | None: ...
    def token(self, conversation: int, index: int) -> str: ...
    def tokens(self, conversation: int, start: int, count: int) -> list[str]: ...
    def fail_at(self, conversation: int) -> int | None: ...


class Stats:
    """The sink a target hands its tokens to, and counters it may increment itself.

    ``receive``/``end``/``fail`` go to the harness's verifier (``streams``) and keep the
    counters too, so a target using them counts nothing by hand. Without a verifier (a
    ``Stats()`` built by hand) only the counters exist.
    """

    __slots__ = ("errors", "messages_sent", "receive", "streams", "streams_completed",
                 "tokens_received")

    def __init__(self, messages_sent: int = 0, tokens_received: int = 0,
                 streams_completed: int = 0, errors: int = 0,
                 streams: VerifiedStreams | None = None) -> None:
        self.messages_sent = messages_sent
        self.tokens_received = tokens_received
        self.streams_completed = streams_completed
        self.errors = errors
        self.streams = streams
        # receive(conversation, text): whole tokens of one conversation, as they arrived (one,
        # or several joined). It is the verifier's own method, which counts tokens_received
        # here too, so a run of tokens costs one call: at short tokens a second call per run
        # is a few percent of a pipeline's speed.
        self.receive: Callable[[int, str], None]
        if streams is None:
            self.receive = self._receive_without_verifier
        else:
            streams.counters = self
            self.receive = streams.receive

    def _verifier(self) -> VerifiedStreams:
        if self.streams is None:
            raise RuntimeError("stats.receive/end/fail need the harness's stats "
                               "(stress.engine.harness.harness_for builds them)")
        return self.streams

    def _receive_without_verifier(self, conversation: int, text: str) -> None:
        self._verifier()  # raises: no verifier

    def end(self, conversation: int) -> None:
        """The conversation's stream ended normally."""
        self._verifier().end(conversation)
        self.streams_completed += 1

    def fail(self, conversation: int, error: object) -> None:
        """The conversation's stream failed (``error``: the exception or its text)."""
        self._verifier().fail(conversation, error)
        self.errors += 1

    @property
    def verified(self) -> bool:
        """The target made or handed back tokens through the harness's verifier."""
        return self.streams is not None and self.streams.used

    def counts(self) -> tuple[int, int, int, int]:
        """(sent, received, completed, errors): the verifier's when the target used it."""
        streams = self.streams
        if streams is not None and self.verified:
            return (streams.made, streams.accepted, streams.streams_completed, streams.failed)
        return self._counters()

    def _counters(self) -> tuple[int, int, int, int]:
        return (self.messages_sent, self.tokens_received, self.streams_completed, self.errors)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Stats):
            return NotImplemented
        return self._counters() == other._counters()

    __hash__ = None  # type: ignore[assignment]  # mutable counters: not hashable

    def __repr__(self) -> str:
        return (f"Stats(messages_sent={self.messages_sent!r}, "
                f"tokens_received={self.tokens_received!r}, "
                f"streams_completed={self.streams_completed!r}, errors={self.errors!r})")


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
            f"check the name, and that the project and its dependencies are installed where "
            f"the kit runs ({sys.prefix}: pip install -e . there), or run it in the container "
            "(--engine docker), which installs them"
        ) from exc
    factory = getattr(module, attr, None)
    if factory is None or not callable(factory):
        raise ConfigError(
            f"--target {spec!r}: module {module_name!r} has no callable {attr!r}"
        )
    return factory  # type: ignore[no-any-return]
