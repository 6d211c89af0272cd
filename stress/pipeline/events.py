"""What a backend streams: the start of a stream, its tokens, and how it ended.

Tokens travel as :class:`TokenRun` events: consecutive tokens of one conversation, each
token its own ``str`` object. Carrying them in runs rather than one event object per
token is what lets CPython move half a million tokens a second through the channel; every
token is still counted, bounded and delivered one by one.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class StreamStart:
    conversation: int


@dataclass(frozen=True, slots=True)
class TokenRun:
    """Consecutive token events of one conversation, oldest first."""

    conversation: int
    texts: list[str]


@dataclass(frozen=True, slots=True)
class StreamEnd:
    """The stream finished normally."""

    conversation: int


@dataclass(frozen=True, slots=True)
class StreamError:
    """The backend failed; the stream ends here, after the tokens it already sent."""

    conversation: int
    message: str


Event = StreamStart | TokenRun | StreamEnd | StreamError
