"""The tokens the harness makes: each says which conversation and index it is.

Every token is exactly ``message_size`` characters and starts with its identity,
``<conversation>:<index>|`` in base 36, followed by filler, so a token read back from an SSE
event or a WebSocket frame still says where it belongs. A conversation's tokens repeat every
``period`` tokens, so the harness keeps a bounded window of them however long the stream.
"""

from __future__ import annotations

import functools

from stress.token_cutter import TokenCutter

MAX_PERIOD = 4096  # tokens before a conversation's stream string repeats
STREAM_BUDGET_CHARS = 16_000_000  # all conversations' stream strings together (about 16 MB)
# Token text after the identity; consecutive tokens start at different offsets of it, so they
# differ in content. The backend's own texts (stress.pipeline.backend) are cut from it too.
FILLER = "Streaming tokens through a bounded channel, one chat message at a time. "
FILLER_CYCLE = 64
_DIGITS = "0123456789abcdefghijklmnopqrstuvwxyz"


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
    chars = TokenCutter.chars_per_token(message_size)  # one cutter per conversation
    budget = STREAM_BUDGET_CHARS // max(1, chars * conversations)
    return max(1, min(MAX_PERIOD, messages, budget))


@functools.lru_cache(maxsize=8)
def _bodies(head_length: int, period: int, size: int) -> tuple[str, ...]:
    """Each slot's token without its conversation prefix, for prefixes of one length."""
    pattern = FILLER * (size // len(FILLER) + 2)
    bodies = []
    for slot in range(period):
        name = base36(slot) + "|"
        offset = slot % FILLER_CYCLE
        bodies.append(name + pattern[offset: offset + max(0, size - head_length - len(name))])
    return tuple(bodies)


def stream_tokens(conversation: int, *, period: int, size: int) -> list[str]:
    """A conversation's tokens ``0 .. period - 1``.

    Token ``slot`` is ``<conversation>:<slot>|`` in base 36, then filler, ``size`` characters
    in all (cut short, identity and all, when ``size`` is smaller than that prefix).
    """
    head = base36(conversation) + ":"
    return [(head + body)[:size] for body in _bodies(len(head), period, size)]
