"""The consumer's transcript: every conversation's text, kept as a chat UI keeps it.

Compact on purpose: a rendered batch becomes one string, and every ``BLOCK_PARTS`` batches
are joined into one block, so a million tokens end up as a few hundred strings rather
than a million objects kept alive. Growth is the text itself plus a little per block.
"""

from __future__ import annotations

import enum

BLOCK_PARTS = 256


class StreamState(enum.Enum):
    STREAMING = "streaming"
    COMPLETED = "completed"
    FAILED = "failed"


class ConversationText:
    __slots__ = ("_blocks", "_kept", "_parts", "chars", "error", "scrollback", "state",
                 "tokens")

    def __init__(self, scrollback_chars: int | None = None) -> None:
        self.scrollback = scrollback_chars  # keep about this much text (None: all of it)
        self._kept = 0  # characters in _blocks
        self._blocks: list[str] = []
        self._parts: list[str] = []
        self.chars = 0
        self.tokens = 0
        self.state = StreamState.STREAMING
        self.error: str | None = None

    def write(self, text: str, tokens: int) -> None:
        parts = self._parts
        parts.append(text)
        self.chars += len(text)
        self.tokens += tokens
        if len(parts) >= BLOCK_PARTS:
            block = "".join(parts)
            self._blocks.append(block)
            self._kept += len(block)
            parts.clear()
            if self.scrollback is not None:
                while len(self._blocks) > 1 and self._kept > self.scrollback:
                    self._kept -= len(self._blocks.pop(0))

    def text(self) -> str:
        return "".join(self._blocks) + "".join(self._parts)

    @property
    def objects(self) -> int:
        """Strings held for this conversation (what compactness is measured by)."""
        return len(self._blocks) + len(self._parts)


class Transcript:
    def __init__(self, *, scrollback_chars: int | None = None) -> None:
        self._conversations: dict[int, ConversationText] = {}
        self.scrollback_chars = scrollback_chars

    def open(self, conversation: int) -> None:
        self._conversations[conversation] = ConversationText(self.scrollback_chars)

    def write(self, conversation: int, text: str, tokens: int) -> None:
        # A KeyError here means tokens arrived before their stream started: a pipeline bug.
        self._conversations[conversation].write(text, tokens)

    def complete(self, conversation: int) -> None:
        self._conversations[conversation].state = StreamState.COMPLETED

    def fail(self, conversation: int, message: str) -> None:
        entry = self._conversations[conversation]
        entry.state = StreamState.FAILED
        entry.error = message

    def __getitem__(self, conversation: int) -> ConversationText:
        return self._conversations[conversation]

    def __len__(self) -> int:
        return len(self._conversations)

    @property
    def tokens(self) -> int:
        return sum(c.tokens for c in self._conversations.values())

    @property
    def chars(self) -> int:
        return sum(c.chars for c in self._conversations.values())

    @property
    def objects(self) -> int:
        return sum(c.objects for c in self._conversations.values())
