"""Verified streams: the harness makes every token and checks every token that arrives.

A target asks the harness for its tokens (``params.token(conversation, index)``, or
``params.tokens(conversation, start, count)`` for a run) and hands whatever reaches its
consumer back (``stats.receive(conversation, text)``, then ``stats.end(conversation)`` or
``stats.fail(conversation, error)``). The harness then knows, without trusting any counter of
the target's, whether each token arrived exactly once, in order and intact, how long it took,
and which conversation diverged first.

Every token is exactly ``message_size`` characters and starts with its identity,
``<conversation>:<index>|`` in base 36, followed by filler, so a token read back from an SSE
event or a WebSocket frame still says where it belongs. ``receive`` takes one token or several
concatenated (a whole run, a network chunk): its length says how many.

Memory is O(1) per conversation: each conversation's tokens are windows of one string that
repeats every ``period`` tokens, so checking a run in order is a single ``str.startswith`` on
that string; only when that fails does the slow path look at each token, with a window of
``REORDER_WINDOW`` missing indices remembered for late arrivals.
"""

from __future__ import annotations

import functools
import re
import time
from collections import deque
from dataclasses import dataclass

from stress.histogram import Histogram, LatencySummary

REORDER_WINDOW = 256  # missing indices remembered per conversation, waiting for a late arrival
MAX_PERIOD = 4096  # tokens before a conversation's stream string repeats
STREAM_BUDGET_CHARS = 8_000_000  # all conversations' stream strings together (about 8 MB)
MAX_STAMPS = 100_000  # made-time records kept per conversation for tokens not yet received
_FILLER = "Streaming tokens through a bounded channel, one chat message at a time. "
_CYCLE = 64
_DIGITS = "0123456789abcdefghijklmnopqrstuvwxyz"
_clock = time.perf_counter


def base36(value: int) -> str:
    if value == 0:
        return "0"
    out = []
    while value:
        value, digit = divmod(value, 36)
        out.append(_DIGITS[digit])
    return "".join(reversed(out))


def stream_period(*, messages: int, message_size: int, conversations: int) -> int:
    """Tokens before a conversation's stream repeats: the whole stream where it fits."""
    budget = STREAM_BUDGET_CHARS // max(1, message_size * conversations)
    return max(1, min(MAX_PERIOD, messages, budget))


@functools.lru_cache(maxsize=8)
def _bodies(head_length: int, period: int, size: int) -> tuple[str, ...]:
    """Each slot's token without its conversation prefix, for prefixes of one length."""
    pattern = _FILLER * (size // len(_FILLER) + 2)
    bodies = []
    for slot in range(period):
        name = base36(slot) + "|"
        offset = slot % _CYCLE
        bodies.append(name + pattern[offset: offset + max(0, size - head_length - len(name))])
    return tuple(bodies)


def stream_text(conversation: int, *, period: int, size: int) -> str:
    """A conversation's stream string: its tokens ``0 .. period - 1``, concatenated.

    Token ``slot`` is ``<conversation>:<slot>|`` in base 36, then filler, ``size`` characters
    in all (cut short, identity and all, when ``size`` is smaller than that prefix).
    """
    head = base36(conversation) + ":"
    bodies = _bodies(len(head), period, size)
    if len(head) + len(base36(period - 1)) + 1 <= size:
        return head + head.join(bodies)  # every token is exactly ``size`` long already
    return "".join([(head + body)[:size] for body in bodies])


@dataclass(frozen=True, kw_only=True)
class Divergence:
    """The first place a conversation's stream differed from what was made."""

    conversation: int
    index: int  # the expected index at that point
    kind: str  # "lost", "duplicated", "reordered", "corrupted", "ended short", ...
    expected: str
    got: str


@dataclass(frozen=True, kw_only=True)
class StreamReport:
    """What the verifier saw over one run; the judge compares it with the scenario."""

    verified: bool  # the target took its tokens from the harness and handed them back
    tokens_made: int  # distinct tokens made (highest index made + 1, per conversation)
    tokens_received: int  # tokens accepted exactly once
    lost: int
    duplicated: int
    reordered: int
    corrupted: int
    streams_completed: int
    ended_short: int  # streams ended before their last token
    ended_early: int  # of those, streams whose tokens were a gap-free prefix: cut off early
    failed: int  # conversations the target reported as failed
    unexpected_failures: int  # failed where the scenario injected no failure
    unreported_failures: int  # injected failures the target never reported
    first_divergence: Divergence | None
    latency: LatencySummary  # token made -> token received
    ttft: LatencySummary  # conversation's first token made -> first token received
    max_gap_ms: float | None  # largest time between two tokens of one conversation


class _Conversation:
    __slots__ = ("ended", "expected_total", "failed", "first_at", "given_up", "index",
                 "last_at", "made_high", "max_gap", "next", "opened_at", "pending", "received",
                 "stamps", "stream", "stream2", "stream_length")

    def __init__(self, index: int, size: int, period: int, expected_total: int) -> None:
        self.index = index
        self.stream = stream_text(index, period=period, size=size)
        self.stream2 = self.stream + self.stream  # a run that wraps is still one window
        self.stream_length = len(self.stream)
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
        self.last_at = 0.0
        self.max_gap = 0.0
        self.ended = False
        self.failed: str | None = None


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
        # Live totals, for the sampler's progress figures (the report recounts exactly).
        self.made = 0
        self.accepted = 0
        self.failed = 0
        # Cuts a window of a stream string into its tokens, each a new string. A regex does
        # it in C without a slice object per token; slices spread over a whole stream string
        # miss the CPU's cache, and cost a fifth of the pipeline's speed.
        self._cut_tokens = re.compile(f".{{{message_size}}}", re.DOTALL).findall
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

    @property
    def used(self) -> bool:
        """Any token made or received through the harness, or a stream ended or failed."""
        return self._touched or self.made > 0 or self.accepted > 0

    # The source side (what ``params`` offers).

    def _conversation(self, conversation: int) -> _Conversation:
        if not 0 <= conversation < len(self._convs):
            raise ValueError(f"conversation {conversation} is outside this scenario's "
                             f"0..{len(self._convs) - 1}")
        return self._convs[conversation]

    def tokens(self, conversation: int, start: int, count: int) -> list[str]:
        """Tokens ``start .. start + count - 1`` of a conversation, each a new string."""
        convs = self._convs
        conv = convs[conversation] if 0 <= conversation < len(convs) \
            else self._conversation(conversation)  # the hot path: no call
        if start < 0 or count < 0:
            raise ValueError(f"tokens({conversation}, {start}, {count}): negative index or count")
        now = _clock()
        if conv.opened_at is None:
            conv.opened_at = now
            self._touched = True
        period = self.period
        size = self.size
        cut = self._cut_tokens
        if count <= period:  # the usual run: one window of the doubled stream string
            offset = (start % period) * size
            out = cut(conv.stream2, offset, offset + count * size)
        else:
            out = []
            position = start
            while len(out) < count:
                offset = (position % period) * size
                take = min(count - len(out), period)
                out.extend(cut(conv.stream2, offset, offset + take * size))
                position += take
        if count:
            # A bounded deque drops the oldest stamp by itself: made and never received, it
            # has no latency to record.
            conv.stamps.append((start, start + count, now))
            if start + count > conv.made_high:
                self.made += start + count - conv.made_high
                conv.made_high = start + count
        return out

    def token(self, conversation: int, index: int) -> str:
        """Token ``index`` of a conversation."""
        return self.tokens(conversation, index, 1)[0]

    # The sink side (what ``stats`` offers).

    def receive(self, conversation: int, text: str) -> None:
        """One or more whole tokens of a conversation, concatenated, as the consumer got them."""
        now = _clock()
        convs = self._convs
        conv = convs[conversation] if 0 <= conversation < len(convs) \
            else self._conversation(conversation)
        size = self.size
        length = len(text)
        start = conv.next
        # In order and intact: one comparison against the stream string, wherever the run
        # wraps. Late arrivals of skipped tokens never match here and take the slow path.
        if not (length and length % size == 0 and length <= conv.stream_length
                and conv.stream2.startswith(text, (start % self.period) * size)):
            self._touched = True
            self._receive_slowly(conv, text, now)
            return
        # The usual case, kept short (it runs once per run of tokens): the run arrives as it
        # was made, so its one stamp gives its latency.
        count = length // size
        end = start + count
        stamps = conv.stamps
        if stamps and stamps[0][1] == end and stamps[0][0] == start:
            self.latency.record(now - stamps.popleft()[2], count)
        else:
            self._record_latency(conv, start, end, now)
        self._arrived(conv, count, now)
        conv.next = end

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
        record = self.latency.record
        while stamps and stamps[0][0] < end:
            made_start, made_end, made_at = stamps[0]
            overlap = min(made_end, end) - max(made_start, start)
            if overlap > 0:
                record(now - made_at, overlap)
            if made_end <= end:
                stamps.popleft()
            else:
                break

    def _arrived(self, conv: _Conversation, count: int, now: float) -> None:
        if conv.first_at is None:
            conv.first_at = now
            self.ttft.record(now - (conv.opened_at if conv.opened_at is not None else now))
        elif now - conv.last_at > conv.max_gap:
            conv.max_gap = now - conv.last_at
        conv.last_at = now
        conv.received += count
        self.accepted += count

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
        return conv.stream[slot * self.size: (slot + 1) * self.size]

    def _identify(self, conv: _Conversation, token: str) -> int | None:
        """The absolute index of an intact token of this conversation, nearest the expected."""
        head, bar, _ = token.partition("|")
        owner, colon, slot_text = head.partition(":")
        try:
            owner_index, slot = int(owner, 36), int(slot_text, 36)
        except ValueError:
            return None
        if (not bar or not colon or owner_index != conv.index or slot >= self.period
                or token != conv.stream[slot * self.size: (slot + 1) * self.size]):
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
