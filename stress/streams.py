"""Verified streams: the harness makes every token and checks every token that arrives.

A target asks the harness for its tokens (``params.token(conversation, index)``, or
``params.tokens(conversation, start, count)`` for a run) and hands whatever reaches its
consumer back (``stats.receive(conversation, text)``, then ``stats.end(conversation)`` or
``stats.fail(conversation, error)``). The harness then knows, without trusting any counter of
the target's, whether each token arrived exactly once, in order and intact, how long it took,
and which conversation diverged first.

Every token is exactly ``message_size`` characters and says which conversation and index it
is (stress.stream_tokens). ``receive`` takes one token or several concatenated (a whole run, a
network chunk): its length says how many.

Memory is O(1) per conversation: each conversation's tokens repeat every ``period`` tokens,
kept as one string (twice over), so making a run is one cut (stress.token_cutter) and checking
a run in order is a single ``str.startswith`` on that string; only when that fails does the
slow path look at each token, with a window of ``REORDER_WINDOW`` missing indices remembered
for late arrivals.

A kit built with ``STRESS_KIT_COMPILE=1`` runs this module compiled by mypyc
(stress.verifier_build): its classes are then native, their attributes only those declared,
and the annotations are checked at run time, so they must say exactly what is passed.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable
from typing import Protocol

from stress.histogram import Histogram
from stress.stream_report import Divergence, StreamReport
from stress.stream_tokens import MAX_PERIOD, stream_period, stream_tokens
from stress.token_cutter import TokenCutter

REORDER_WINDOW = 256  # missing indices remembered per conversation, waiting for a late arrival
MAX_STAMPS = 100_000  # made-time records kept per conversation for tokens not yet received
LATENCY_BATCH = 1024  # per-run latencies buffered before they go into the histogram at once
_clock = time.perf_counter


class _Conversation:
    __slots__ = ("cut", "ended", "expected_total", "failed", "first_at", "given_up", "index",
                 "last_at", "made_high", "max_gap", "next", "opened_at", "pending", "received",
                 "stamps", "stream2")

    def __init__(self, index: int, size: int, period: int, expected_total: int) -> None:
        self.index = index
        cutter = TokenCutter(stream_tokens(index, period=period, size=size))
        self.cut = cutter.cut
        self.stream2 = cutter.joined  # the stream twice: a run that wraps is still one window
        self.expected_total = expected_total
        self.next = 0  # the index the next in-order token must have
        self.received = 0
        self.made_high = 0  # one past the highest index made
        self.pending: set[int] = set()  # skipped indices that may still arrive
        self.given_up = 0  # skipped indices too far back to wait for: lost
        # (start, end, made at) of runs made and not yet received
        self.stamps: deque[tuple[int, int, float]] = deque(maxlen=MAX_STAMPS)
        self.opened_at: float | None = None
        self.first_at: float | None = None
        # Before the first token no gap is known: a time so far back that the first arrival
        # always "exceeds" the largest gap, which is where the fast path looks for it.
        self.last_at = -math.inf
        self.max_gap = 0.0
        self.ended = False
        self.failed: str | None = None


class TokenCounter(Protocol):
    """Where the verifier counts every whole token handed back (``target.Stats``)."""

    tokens_received: int


class _OwnCount:
    __slots__ = ("tokens_received",)

    def __init__(self) -> None:
        self.tokens_received = 0


class VerifiedStreams:
    """Both ends of every conversation of one run: the token source and the checking sink."""

    def __init__(self, *, messages: int, message_size: int, conversations: int,
                 fail_at: dict[int, int] | None = None, open_ended: bool = False) -> None:
        if message_size < 1:
            raise ValueError(f"message_size must be at least 1, got {message_size}")
        self.size = message_size
        self.messages = messages
        # Open-ended (a soak run): a stream is as long as the target made it, so a stream is
        # short only when tokens it made never arrived.
        self.open_ended = open_ended
        self.period = stream_period(messages=MAX_PERIOD if open_ended else messages,
                                    message_size=message_size, conversations=conversations)
        self.fail_at = dict(fail_at or {})
        self._convs = [
            _Conversation(c, message_size, self.period, self.fail_at.get(c, messages))
            for c in range(conversations)
        ]
        self._by_number = dict(enumerate(self._convs))  # one lookup, no range check
        # The stats whose tokens_received counts every whole token handed to receive
        # (target.Stats sets itself here); a verifier on its own counts into a stand-in.
        self.counters: TokenCounter = _OwnCount()
        self.failed = 0
        self._touched = False  # anything made, received, ended or failed through the harness
        self.streams_completed = 0
        self.ended_short = 0
        self.ended_early = 0
        self.duplicated = 0
        self.reordered = 0
        self.corrupted = 0
        self.unknown_failures: list[str] = []
        self.first_divergence: Divergence | None = None
        self.latency = Histogram()
        self.ttft = Histogram()
        # Per-run latencies and their token counts, until LATENCY_BATCH of them fill a batch.
        self._latencies: list[float] = []
        self._latency_weights: list[int] = []
        # Called after each batch, on the thread that received it: the sampler's cue that the
        # loop is running, so a fast target is sampled without a timer in its loop.
        self.on_batch: Callable[[], None] | None = None

    @property
    def used(self) -> bool:
        """Any token made or received through the harness, or a stream ended or failed."""
        return self._touched

    # Live totals, for the sampler's progress figures (the report recounts exactly).

    @property
    def made(self) -> int:
        return sum(conv.made_high for conv in self._convs)

    @property
    def accepted(self) -> int:
        return sum(conv.received for conv in self._convs)


    # The source side (what ``params`` offers).

    def _conversation(self, conversation: int) -> _Conversation:
        if not 0 <= conversation < len(self._convs):
            raise ValueError(f"conversation {conversation} is outside this scenario's "
                             f"0..{len(self._convs) - 1}")
        return self._convs[conversation]

    def tokens(self, conversation: int, start: int, count: int) -> list[str]:
        """Tokens ``start .. start + count - 1`` of a conversation, each a new string."""
        now = _clock()
        try:
            conv = self._by_number[conversation]
        except (KeyError, TypeError):
            conv = self._conversation(conversation)  # raises: no such conversation
        end = start + count
        if start == conv.made_high and start and 0 < count <= self.period:
            # The usual call, kept to a few steps: the run after the last one made. (The
            # conversation's first run, at 0, goes the general way: it opens the conversation.)
            conv.stamps.append((start, end, now))
            conv.made_high = end
            return conv.cut(start % self.period, count)
        return self._tokens_otherwise(conv, start, count, now)

    def _tokens_otherwise(self, conv: _Conversation, start: int, count: int,
                          now: float) -> list[str]:
        """Any other run: the first, one made again, one longer than a period, or none."""
        if start < 0 or count < 0:
            raise ValueError(f"tokens({conv.index}, {start}, {count}): negative index or count")
        period = self.period
        if count <= period:
            out = conv.cut(start % period, count)
        else:
            out = []
            position = start
            while len(out) < count:
                take = min(count - len(out), period)
                out.extend(conv.cut(position % period, take))
                position += take
        if count:
            # A bounded deque drops the oldest stamp by itself: made and never received, it
            # has no latency to record.
            conv.stamps.append((start, start + count, now))
            if start + count > conv.made_high:
                if conv.opened_at is None:
                    conv.opened_at = now  # the conversation's first token made
                    self._touched = True
                conv.made_high = start + count
        return out

    def token(self, conversation: int, index: int) -> str:
        """Token ``index`` of a conversation."""
        return self.tokens(conversation, index, 1)[0]

    # The sink side (what ``stats`` offers).

    def receive(self, conversation: int, text: str) -> None:
        """One or more whole tokens of a conversation, concatenated, as the consumer got them."""
        now = _clock()
        try:
            conv = self._by_number[conversation]
        except (KeyError, TypeError):
            conv = self._conversation(conversation)  # raises: no such conversation
        size = self.size
        length = len(text)
        start = conv.next
        # In order and intact: one comparison against the stream string (twice over: a run
        # that wraps is one window of it, and a longer run in order is as good). Late
        # arrivals of skipped tokens, damaged tokens and anything else take the slow path.
        if not length or length % size \
                or not conv.stream2.startswith(text, (start % self.period) * size):
            self._touched = True
            self.counters.tokens_received += length // size
            self._receive_slowly(conv, text, now)
            return
        # The usual case, kept to a few steps (it runs once per run of tokens, and at short
        # tokens its cost is much of the pipeline's): the run arrives as it was made, so its
        # one stamp gives its latency.
        count = length // size
        end = start + count
        stamps = conv.stamps
        if stamps and stamps[0][1] == end and stamps[0][0] == start:
            latencies = self._latencies
            latencies.append(now - stamps.popleft()[2])
            self._latency_weights.append(count)
            if len(latencies) >= LATENCY_BATCH:
                self._flush_latencies()
        else:
            self._record_latency(conv, start, end, now)
        # _arrived, inlined: a call more per run is about a percent of the pipeline's speed.
        if now - conv.last_at > conv.max_gap:
            self._arrived_after_gap(conv, now)
        conv.last_at = now
        conv.received += count
        conv.next = end
        self.counters.tokens_received += count

    def end(self, conversation: int) -> None:
        """The consumer saw the conversation's stream end normally."""
        self._touched = True
        conv = self._conversation(conversation)
        if conv.ended:
            return
        conv.ended = True
        self.streams_completed += 1
        if self.open_ended:
            conv.expected_total = conv.made_high
        if conv.next < conv.expected_total or conv.pending:
            self.ended_short += 1
            if not conv.pending and not conv.given_up:
                self.ended_early += 1  # every token up to the end, none after: cut off
            self._diverged(conv, "ended short", f"{conv.expected_total} tokens",
                           f"{conv.next - len(conv.pending)} tokens")

    def fail(self, conversation: int, error: object) -> None:
        """The consumer saw the conversation's stream fail (``error``: an exception or text)."""
        self._touched = True
        conv = self._conversation(conversation)
        if conv.failed is None:
            conv.failed = _one_line(error)
            self.failed += 1

    # Checking.

    def _accept(self, conv: _Conversation, start: int, count: int, now: float) -> None:
        self._record_latency(conv, start, start + count, now)
        self._arrived(conv, count, now)
        if start == conv.next:
            conv.next = start + count

    def _record_latency(self, conv: _Conversation, start: int, end: int, now: float) -> None:
        """Record each made-stamp's share of tokens ``start .. end - 1`` and drop used stamps."""
        stamps = conv.stamps
        while stamps and stamps[0][0] < end:
            made_start, made_end, made_at = stamps[0]
            overlap = min(made_end, end) - max(made_start, start)
            if overlap > 0:
                self._latencies.append(now - made_at)
                self._latency_weights.append(overlap)
            if made_end <= end:
                stamps.popleft()
            else:
                break
        if len(self._latencies) >= LATENCY_BATCH:
            self._flush_latencies()

    def _flush_latencies(self) -> None:
        self.latency.record_many(self._latencies, self._latency_weights)
        self._latencies.clear()
        self._latency_weights.clear()
        if self.on_batch is not None:
            self.on_batch()

    def _arrived(self, conv: _Conversation, count: int, now: float) -> None:
        """``count`` tokens of the conversation accepted just now: its gaps and its count."""
        if now - conv.last_at > conv.max_gap:
            self._arrived_after_gap(conv, now)
        conv.last_at = now
        conv.received += count

    def _arrived_after_gap(self, conv: _Conversation, now: float) -> None:
        """A token arrived longer after the last one than any gap before: or it is the first."""
        if conv.first_at is None:
            conv.first_at = now
            self._touched = True
            self.ttft.record(now - (conv.opened_at if conv.opened_at is not None else now))
        else:
            conv.max_gap = now - conv.last_at

    def _receive_slowly(self, conv: _Conversation, text: str, now: float) -> None:
        size = self.size
        whole = len(text) - len(text) % size
        for begin in range(0, whole, size):
            self._one_token(conv, text[begin: begin + size], now)
        if whole < len(text):
            self.corrupted += 1
            self._diverged(conv, "corrupted", f"whole tokens of {size} characters",
                           text[whole:])

    def _one_token(self, conv: _Conversation, token: str, now: float) -> None:
        expected = self._expected(conv, conv.next)
        if token == expected:
            self._accept(conv, conv.next, 1, now)
            return
        index = self._identify(conv, token)
        if index is None:
            self.corrupted += 1
            self._diverged(conv, "corrupted", expected, token)
            conv.next += 1  # damaged in place: the stream goes on after it
            return
        if index > conv.next:
            self._diverged(conv, "lost", expected, token)
            waiting_from = max(conv.next, index - REORDER_WINDOW)
            conv.given_up += waiting_from - conv.next
            conv.pending.update(range(waiting_from, index))
            conv.next = index
            self._accept(conv, index, 1, now)
            while len(conv.pending) > REORDER_WINDOW:
                conv.pending.remove(min(conv.pending))  # too late to arrive: lost
                conv.given_up += 1
        elif index in conv.pending:
            conv.pending.remove(index)
            self.reordered += 1
            self._diverged(conv, "reordered", expected, token)
            self._accept(conv, index, 1, now)
        else:
            self.duplicated += 1
            self._diverged(conv, "duplicated", expected, token)

    def _expected(self, conv: _Conversation, index: int) -> str:
        slot = index % self.period
        return conv.stream2[slot * self.size: (slot + 1) * self.size]

    def _identify(self, conv: _Conversation, token: str) -> int | None:
        """The absolute index of an intact token of this conversation, nearest the expected."""
        head, bar, _ = token.partition("|")
        owner, colon, slot_text = head.partition(":")
        try:
            owner_index, slot = int(owner, 36), int(slot_text, 36)
        except ValueError:
            return None
        if (not bar or not colon or owner_index != conv.index or slot >= self.period
                or token != conv.stream2[slot * self.size: (slot + 1) * self.size]):
            return None
        base = conv.next - conv.next % self.period + slot
        candidates = [c for c in (base - self.period, base, base + self.period) if c >= 0]
        if not self.open_ended:  # a token past the stream's end was never made
            candidates = [c for c in candidates if c < self.messages] or candidates
        return min(candidates, key=lambda c: abs(c - conv.next))

    def _diverged(self, conv: _Conversation, kind: str, expected: str, got: str) -> None:
        if self.first_divergence is None:
            self.first_divergence = Divergence(conversation=conv.index, index=conv.next,
                                               kind=kind, expected=expected[:80],
                                               got=got[:80])

    def report(self) -> StreamReport:
        """The verdict's inputs; call once the run is over (a live stream counts as short)."""
        self._flush_latencies()
        lost = 0
        made = 0
        unexpected = unreported = failed = 0
        gaps = [c.max_gap for c in self._convs if c.first_at is not None]
        for conv in self._convs:
            if self.open_ended and not conv.ended and conv.failed is None:
                conv.expected_total = conv.made_high  # as long as it was made
            made += conv.made_high
            lost += conv.given_up + len(conv.pending) + max(0, conv.expected_total - conv.next)
            injected = conv.index in self.fail_at and self.fail_at[conv.index] < self.messages
            if self.open_ended and injected:
                injected = conv.made_high >= self.fail_at[conv.index]  # time ran out first?
            if conv.failed is not None:
                failed += 1
                unexpected += not injected
            elif injected:
                unreported += 1
        if lost and self.first_divergence is None:
            short = next(c for c in self._convs if c.pending or c.next < c.expected_total)
            self._diverged(short, "lost", self._expected(short, short.next), "(nothing)")
        return StreamReport(
            verified=self.used, tokens_made=made,
            tokens_received=sum(c.received for c in self._convs), lost=lost,
            duplicated=self.duplicated, reordered=self.reordered, corrupted=self.corrupted,
            streams_completed=self.streams_completed, ended_short=self.ended_short,
            ended_early=self.ended_early,
            failed=failed, unexpected_failures=unexpected, unreported_failures=unreported,
            first_divergence=self.first_divergence, latency=self.latency.summary(),
            ttft=self.ttft.summary(),
            max_gap_ms=max(gaps) * 1000 if gaps else None,
        )


def _one_line(error: object) -> str:
    text = f"{type(error).__name__}: {error}" if isinstance(error, BaseException) else str(error)
    return " ".join(text.split())[:300]
