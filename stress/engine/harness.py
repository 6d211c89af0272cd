"""The params and stats a target is handed: the scenario's fields, the harness's tokens and
the checking sink, built once per measured phase.

The harness owns the failure plan (which conversations an ``error_rate`` makes fail, and
where), so the verdict on errors compares what the target reported with what was injected.
Everything here is built before the memory baseline is taken: the verifier's stream strings
are the harness's memory, not growth of the target's.
"""

from __future__ import annotations

import math
import random

from stress.streams import VerifiedStreams
from stress.target import ScenarioFields, Stats

DEFAULT_ERROR_SEED = 1729


def failure_plan(params: ScenarioFields, seed: int = DEFAULT_ERROR_SEED) -> dict[int, int]:
    """Which conversations fail and after how many tokens, the same on every run.

    ``round(error_rate * conversations)`` conversations fail (half rounds up), each at a
    position strictly inside its stream when the stream has at least two tokens.
    """
    rate = min(max(float(params.error_rate), 0.0), 1.0)
    conversations = int(params.conversations)
    failing = min(conversations, math.floor(rate * conversations + 0.5))
    if failing == 0:
        return {}
    rng = random.Random(seed)
    chosen = sorted(rng.sample(range(conversations), failing))
    messages = int(params.messages)
    return {c: rng.randrange(1, messages) if messages > 1 else 0 for c in chosen}


class HarnessParams:
    """What ``params`` is to a target: the scenario's fields by their YAML names, the tokens
    to stream (``token``, ``tokens``) and the failure plan (``fail_at``)."""

    def __init__(self, source: ScenarioFields, streams: VerifiedStreams,
                 plan: dict[int, int]) -> None:
        self.messages = int(source.messages)
        self.message_size = int(source.message_size)
        self.token_delay_us = float(source.token_delay_us)
        self.channel_buffer = int(source.channel_buffer)
        self.consumer_delay_us = float(source.consumer_delay_us)
        self.conversations = int(source.conversations)
        self.error_rate = float(source.error_rate)
        duration = getattr(source, "duration_s", None)
        # A soak run: stream until this many seconds have passed, then end every stream.
        self.duration_s: float | None = None if duration is None else float(duration)
        self._plan = plan
        self._source = source
        self._use(streams)

    def _use(self, streams: VerifiedStreams) -> None:
        # Bound methods, so a token costs one call (the backend's hot path).
        self.token = streams.token
        self.tokens = streams.tokens

    def new_phase(self) -> Stats:
        """A fresh verifier for the next phase (the measured run, quit under load), and the
        stats that check against it. A target that kept these params from its setup (a
        server's handler, say) makes the new phase's tokens through them."""
        streams = _verifier(self._source, self._plan)
        self._use(streams)
        return Stats(streams=streams)

    def fail_at(self, conversation: int) -> int | None:
        """The token index at which this conversation's backend must fail, or None."""
        at = self._plan.get(conversation)
        return at if at is not None and at < self.messages else None

    def __repr__(self) -> str:
        return (f"HarnessParams(messages={self.messages}, message_size={self.message_size}, "
                f"conversations={self.conversations}, error_rate={self.error_rate}, "
                f"duration_s={self.duration_s})")


def harness_for(source: ScenarioFields, *,
                seed: int = DEFAULT_ERROR_SEED) -> tuple[HarnessParams, Stats]:
    """A fresh ``params`` and ``stats`` for one run of a target, sharing one verifier."""
    plan = failure_plan(source, seed)
    streams = _verifier(source, plan)
    return HarnessParams(source, streams, plan), Stats(streams=streams)


def _verifier(source: ScenarioFields, plan: dict[int, int]) -> VerifiedStreams:
    return VerifiedStreams(messages=int(source.messages), message_size=int(source.message_size),
                           conversations=int(source.conversations), fail_at=plan,
                           open_ended=getattr(source, "duration_s", None) is not None)
