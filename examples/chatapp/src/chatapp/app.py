"""The app: each conversation's backend streams tokens into one bounded anyio memory stream,
and the UI task renders them into per-conversation transcripts.

This is the code a stress run measures; `chatapp.stress_target` only adapts it to the kit.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import anyio
from anyio.abc import ObjectReceiveStream, ObjectSendStream

# How much work the UI does per token it renders (a markdown pass, say).
RENDER_PASSES = 1


@dataclass(frozen=True)
class Token:
    conversation: int
    text: str


@dataclass(frozen=True)
class Done:
    conversation: int
    error: str | None = None


Event = Token | Done


@dataclass
class Transcript:
    """What the UI shows: the text of each conversation so far."""

    parts: dict[int, list[str]] = field(default_factory=dict)
    errors: dict[int, str] = field(default_factory=dict)

    def render(self, token: Token) -> str:
        text = token.text
        for _ in range(RENDER_PASSES):
            text = "".join(list(text))  # stands in for real formatting work
        self.parts.setdefault(token.conversation, []).append(text)
        return text


async def backend(conversation: int, tokens: Callable[[int, int], list[str]], count: int,
                  send: ObjectSendStream[Event], *, delay_s: float = 0.0,
                  fail_at: int | None = None, batch: int = 50) -> None:
    """One model answer: ``count`` tokens, paced at ``delay_s`` each, failing at ``fail_at``."""
    stop = count if fail_at is None else min(fail_at, count)
    sent = 0
    started = anyio.current_time()
    async with send:
        while sent < stop:
            if delay_s > 0:
                due = min(stop, math.floor((anyio.current_time() - started) / delay_s) + 1)
                if due <= sent:
                    await anyio.sleep(sent * delay_s - (anyio.current_time() - started))
                    continue
                run = min(due - sent, batch)
            else:
                run = min(stop - sent, batch)
            for text in tokens(sent, run):
                await send.send(Token(conversation, text))
            sent += run
        await send.send(Done(conversation, "model backend failed" if fail_at is not None
                             and fail_at < count else None))


async def ui(receive: ObjectReceiveStream[Event], transcript: Transcript,
             on_token: Callable[[Token, str], None], on_done: Callable[[Done], None], *,
             delay_s: float = 0.0, conversations: int = 1,
             pause: Callable[[float], Awaitable[None]] = anyio.sleep) -> None:
    """Render until every conversation is done, ``delay_s`` of render time per token.

    The render time is kept on a schedule (busy until ``k * delay_s`` after k tokens), sleeping
    only while ahead of it: the event loop's timers cannot sleep 100 microseconds, so a sleep
    per token would make the UI ten times slower than its render cost.
    """
    remaining = conversations
    busy_until = anyio.current_time()
    async with receive:
        async for event in receive:
            if isinstance(event, Token):
                on_token(event, transcript.render(event))
                if delay_s > 0:
                    busy_until = max(busy_until, anyio.current_time() - delay_s) + delay_s
                    ahead = busy_until - anyio.current_time()
                    if ahead > 0.001:
                        await pause(ahead)
            else:
                if event.error is not None:
                    transcript.errors[event.conversation] = event.error
                on_done(event)
                remaining -= 1
                if remaining == 0:
                    return
