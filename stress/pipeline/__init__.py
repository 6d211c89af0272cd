"""The reference streaming pipeline: the system the kit stress-tests by default.

Shaped like an LLM chat application: per conversation a backend streams tokens (stream
start, tokens, stream end or error), the conductor forwards them through one bounded
channel, and a UI consumer renders every conversation into a compact transcript::

    backend-0 ─┐
    backend-1 ─┼─> Channel (capacity channel_buffer, lossless backpressure) ─> Consumer
    backend-N ─┘                                                               └─> Transcript

It implements exactly the target interface of :mod:`stress.target` and nothing in the
harness knows about it: ``reference`` is a zero-argument factory returning an object with
``async def run(params, stats, quit)``. Scenario fields it reads, by their YAML names:
``messages`` (tokens per conversation), ``message_size`` (characters per token),
``token_delay_us`` (producer pacing), ``channel_buffer`` (capacity, in tokens),
``consumer_delay_us`` (render cost per token), ``conversations`` (concurrent streams) and
``error_rate`` (fraction of conversations whose backend fails mid-stream).

Its backends stream the harness's tokens (``params.tokens``; a conversation fails where
``params.fail_at`` says; with ``duration_s`` the streams run for that long), and the consumer
hands every rendered run back (``stats.receive`` with the run's joined text, then
``stats.end`` or ``stats.fail``), so the harness verifies each token. ``messages_sent``
still counts every token handed to the channel. Broken variants for demos and the kit's
own tests are in :mod:`stress.pipeline.faults`.
"""

from __future__ import annotations

from stress.engine.harness import failure_plan
from stress.pipeline.channel import Channel, ChannelClosed, ChannelStatistics, Overflow
from stress.pipeline.conductor import ReferencePipeline
from stress.pipeline.transcript import Transcript

__all__ = [
    "Channel",
    "ChannelClosed",
    "ChannelStatistics",
    "Overflow",
    "ReferencePipeline",
    "Transcript",
    "failure_plan",
    "reference",
]


def reference() -> ReferencePipeline:
    """The default target: lossless backpressure."""
    return ReferencePipeline()
