"""The backend: streams one conversation's tokens, like an LLM answering a chat message.

Every token is a new ``str`` of exactly ``message_size`` characters (cut from a repeating
pattern: CPython copies it, so no two tokens share an object and memory figures are
honest; one-character tokens are the exception, CPython caches those).

Pacing keeps a schedule rather than sleeping per token: token ``k`` is due at
``start + k * delay``. The backend emits every token already due in one burst and sleeps
only when it is ahead of the clock. The event loop cannot sleep for 10 microseconds (its
timers resolve to about a millisecond), so sleeping per token would make a million
10-microsecond tokens take twenty minutes instead of ten seconds.
"""

from __future__ import annotations

import asyncio
import functools
import math
import sys
import time
from collections.abc import AsyncGenerator, Callable

from stress.pipeline.events import Event, StreamEnd, StreamError, StreamStart, TokenRun
from stress.stream_tokens import FILLER, FILLER_CYCLE
from stress.token_cutter import TokenCutter


def _pattern(size: int) -> str:
    repeats = (size + FILLER_CYCLE) // len(FILLER) + 1
    return (FILLER * repeats)[: size + FILLER_CYCLE]


def token_text(index: int, size: int) -> str:
    """The text of token ``index`` (what :class:`TokenTexts` makes, one at a time)."""
    offset = index % FILLER_CYCLE
    return _pattern(size)[offset : offset + size]


class TokenTexts:
    """Makes runs of token texts, cut in C by a :class:`TokenCutter` shared per size."""

    def __init__(self, size: int, max_run: int) -> None:
        if size < 1:
            raise ValueError(f"message_size must be at least 1 character, got {size}")
        # The texts repeat every FILLER_CYCLE tokens; a period of whole cycles fits any run.
        self._cutter = _cutter(size, FILLER_CYCLE * -(-max(1, max_run) // FILLER_CYCLE))
        self.max_run = max_run

    def make(self, start: int, count: int) -> list[str]:
        """Texts of tokens ``start .. start + count - 1`` (``count <= max_run``)."""
        return self._cutter.cut(start % self._cutter.period, count)


@functools.lru_cache(maxsize=8)
def _cutter(size: int, period: int) -> TokenCutter:
    pattern = _pattern(size)
    return TokenCutter([pattern[index % FILLER_CYCLE: index % FILLER_CYCLE + size]
                        for index in range(period)])


# A harness's token source: tokens ``start .. start + count - 1`` of a conversation.
TokenSource = Callable[[int, int, int], list[str]]


class Backend:
    """One conversation's stream: start, ``messages`` tokens, end (or an error at ``fail_at``).

    ``tokens`` is the harness's source (``params.tokens``); without one the backend makes its
    own texts. With ``duration_s`` (a soak) the stream goes on until that many seconds have
    passed, however many tokens that is, then ends.
    """

    def __init__(self, conversation: int, *, messages: int, message_size: int,
                 token_delay_us: float = 0.0, max_run: int = 100,
                 fail_at: int | None = None, tokens: TokenSource | None = None,
                 duration_s: float | None = None) -> None:
        self.conversation = conversation
        self.messages = messages
        self.delay_s = token_delay_us / 1e6
        self.max_run = max(1, max_run)
        self.fail_at = fail_at
        self.duration_s = duration_s
        if tokens is None:
            texts = TokenTexts(message_size, self.max_run)

            def own(_conversation: int, start: int, count: int) -> list[str]:
                return texts.make(start, count)

            tokens = own
        self._make: TokenSource = tokens

    async def stream(self) -> AsyncGenerator[Event, None]:
        """Yield the stream's events; token runs are at most ``max_run`` long."""
        conversation = self.conversation
        soak = self.duration_s is not None
        limit = sys.maxsize if soak else self.messages
        failing = self.fail_at is not None and self.fail_at < limit
        stop = min(self.fail_at, limit) if self.fail_at is not None else limit
        delay = self.delay_s
        make = self._make
        yield StreamStart(conversation)
        sent = 0
        start = time.perf_counter()
        ends_at = start + self.duration_s if self.duration_s is not None else math.inf
        while sent < stop:
            if soak and time.perf_counter() >= ends_at:
                failing = False  # the time was up before the injected failure came
                break
            if delay > 0:
                elapsed = time.perf_counter() - start
                due = min(int(elapsed / delay) + 1, stop)  # token k is due at k * delay
                if due <= sent:
                    await asyncio.sleep(max(0.0, sent * delay - elapsed))
                    continue
                count = min(due - sent, self.max_run)
            else:
                count = min(stop - sent, self.max_run)
            yield TokenRun(conversation, make(conversation, sent, count))
            sent += count
        if failing:
            yield StreamError(conversation, f"injected backend failure after {sent} tokens")
        else:
            yield StreamEnd(conversation)
