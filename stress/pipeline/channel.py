"""The bounded channel between the backends and the consumer.

Capacity is counted in tokens (stream start/end/error events ride along free: there are
at most two per conversation and a chat UI must never lose them). What happens when a
token arrives at a full channel is the :class:`Overflow` policy:

* ``BACKPRESSURE`` (the default) is lossless: :meth:`Channel.offer` takes what fits and the
  sender awaits :meth:`Channel.wait_writable` before offering the rest.
* ``DROP_NEWEST`` keeps what is buffered and drops the arriving tokens that do not fit.
* ``DROP_OLDEST`` keeps the arriving tokens and evicts the oldest buffered ones.

Both lossy policies count every token they drop, so a harness can prove it detects loss.

Tokens move in batches: senders hand over runs of tokens, and the receiver takes
everything buffered in one call. Per-token awaits on an ``asyncio.Queue`` cost several
microseconds each in CPython; batching moves the per-await cost onto a hundred tokens
while the capacity still bounds memory and still stops the producer.

One receiver at a time; any number of senders, woken in the order they started waiting.
Waiter futures are removed in ``finally`` whatever ends the wait (wakeup, cancellation,
close), and a wakeup that lands on a sender being cancelled is handed to the next one.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
from collections import deque
from dataclasses import dataclass

from stress.pipeline.events import Event, TokenRun


class Overflow(enum.Enum):
    BACKPRESSURE = "backpressure"
    DROP_NEWEST = "drop-newest"
    DROP_OLDEST = "drop-oldest"


class ChannelClosed(Exception):
    """Sending on a channel that was closed."""


@dataclass(frozen=True, kw_only=True)
class ChannelStatistics:
    capacity: int
    policy: Overflow
    buffered: int  # tokens waiting for the receiver now
    handed: int  # tokens senders handed over (including those a lossy policy dropped)
    delivered: int  # tokens the receiver took
    dropped: int  # tokens a lossy policy discarded
    producer_waits: int  # times a sender found the channel full and waited
    max_buffered: int
    senders_waiting: int
    closed: bool


class Channel:
    def __init__(self, capacity: int, policy: Overflow = Overflow.BACKPRESSURE) -> None:
        if capacity < 1:
            raise ValueError(f"channel capacity must be at least 1 token, got {capacity}")
        self.capacity = capacity
        self.policy = policy
        self._buffer: deque[Event] = deque()
        self._tokens = 0
        self._closed = False
        self._getter: asyncio.Future[None] | None = None
        self._putters: deque[asyncio.Future[None]] = deque()
        self._handed = 0
        self._delivered = 0
        self._dropped = 0
        self._producer_waits = 0
        self._max_buffered = 0

    # -- sending --------------------------------------------------------------------

    def offer(self, event: Event) -> int:
        """Hand over an event without waiting; return how many of its tokens were taken.

        Stream start/end/error events are always taken (and count 0). A token run is
        taken whole by the lossy policies (what they drop still counts as handed over);
        under backpressure only what fits is taken, and the caller waits for room
        (:meth:`wait_writable`) before offering the rest.
        """
        if self._closed:
            raise ChannelClosed("send on a closed channel")
        if not isinstance(event, TokenRun):
            self._buffer.append(event)
            self._wake_getter()
            return 0
        count = len(event.texts)
        free = self.capacity - self._tokens
        if count <= free:
            self._buffer.append(event)
            self._tokens += count
        elif self.policy is Overflow.BACKPRESSURE:
            if free <= 0:
                return 0
            self._buffer.append(TokenRun(event.conversation, event.texts[:free]))
            self._tokens += free
            count = free
        elif self.policy is Overflow.DROP_NEWEST:
            if free > 0:
                self._buffer.append(TokenRun(event.conversation, event.texts[:free]))
                self._tokens += free
            self._dropped += count - max(free, 0)
        else:  # DROP_OLDEST
            kept = event.texts[-self.capacity:]
            self._dropped += count - len(kept)
            self._evict_oldest(self._tokens + len(kept) - self.capacity)
            self._buffer.append(TokenRun(event.conversation, kept))
            self._tokens += len(kept)
        self._handed += count
        self._max_buffered = max(self._max_buffered, self._tokens)
        self._wake_getter()
        if self._tokens < self.capacity:
            self._wake_putter()  # room left: the next waiting sender may use it
        return count

    def _evict_oldest(self, excess: int) -> None:
        if excess <= 0:
            return
        self._dropped += excess
        self._tokens -= excess
        kept: deque[Event] = deque()
        for event in self._buffer:
            if excess and isinstance(event, TokenRun):
                size = len(event.texts)
                if size <= excess:
                    excess -= size
                    continue
                kept.append(TokenRun(event.conversation, event.texts[excess:]))
                excess = 0
            else:
                kept.append(event)
        self._buffer = kept

    async def wait_writable(self) -> None:
        """Wait until at least one token fits (raises ChannelClosed if the channel closes)."""
        loop = asyncio.get_running_loop()
        while self._tokens >= self.capacity:
            if self._closed:
                raise ChannelClosed("send on a closed channel")
            waiter: asyncio.Future[None] = loop.create_future()
            self._putters.append(waiter)
            self._producer_waits += 1
            woken = False
            try:
                await waiter
                woken = True
            finally:
                if not woken:
                    if waiter.done() and not waiter.cancelled():
                        # Woken and cancelled in the same step: pass the room on.
                        self._wake_putter()
                    else:
                        waiter.cancel()
                        with contextlib.suppress(ValueError):
                            self._putters.remove(waiter)
        if self._closed:
            raise ChannelClosed("send on a closed channel")

    # -- receiving ------------------------------------------------------------------

    @property
    def pending_events(self) -> int:
        return len(self._buffer)

    def receive_nowait(self) -> deque[Event]:
        """Take everything buffered (possibly nothing), oldest first."""
        events = self._buffer
        self._buffer = deque()
        self._delivered += self._tokens
        self._tokens = 0
        self._wake_putter()
        return events

    async def receive(self) -> deque[Event]:
        """Wait for events and take all of them; empty only when closed and drained."""
        while not self._buffer:
            if self._closed:
                return deque()
            if self._getter is not None:
                raise RuntimeError("Channel supports one receiver at a time")
            getter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._getter = getter
            try:
                await getter
            finally:
                self._getter = None
                getter.cancel()  # no-op once woken; frees it when the receiver was cancelled
        return self.receive_nowait()

    # -- lifecycle ------------------------------------------------------------------

    def close(self) -> None:
        """No more sends; the receiver still gets what is buffered, then an empty batch."""
        if self._closed:
            return
        self._closed = True
        self._wake_getter()
        while self._putters:
            waiter = self._putters.popleft()
            if not waiter.done():
                waiter.set_result(None)

    @property
    def closed(self) -> bool:
        return self._closed

    def statistics(self) -> ChannelStatistics:
        return ChannelStatistics(
            capacity=self.capacity, policy=self.policy, buffered=self._tokens,
            handed=self._handed, delivered=self._delivered, dropped=self._dropped,
            producer_waits=self._producer_waits, max_buffered=self._max_buffered,
            senders_waiting=sum(not w.done() for w in self._putters), closed=self._closed,
        )

    def _wake_getter(self) -> None:
        getter = self._getter
        if getter is not None and not getter.done():
            getter.set_result(None)

    def _wake_putter(self) -> None:
        while self._putters:
            waiter = self._putters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
