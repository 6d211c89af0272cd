"""Runs of fixed-size tokens cut out of one text, each token a new string, at C speed.

Both token sources (the harness's verified streams and a backend's own texts) make a run of
tokens per call, and at a million tokens a second the cost of making a token is much of a
pipeline's. ``str.split`` on a separator makes each piece in one C loop, about a third of
the cost of slicing per token (a ``map`` over slice objects or a regex ``findall``), up to a
few hundred characters a token. Past that, split's scan for the separator costs more than
copying, so long tokens are sliced. Compiled with the verifier when the kit is built with
``STRESS_KIT_COMPILE=1`` (stress.verifier_build).
"""

from __future__ import annotations

from collections.abc import Sequence

SEPARATOR = "\x1f"  # the ASCII unit separator: no token the kit makes contains it
SPLIT_MAX_SIZE = 256  # characters per token up to which splitting beats slicing


class TokenCutter:
    """Consecutive tokens of a cyclic sequence (``tokens``, all of one length), in runs.

    ``joined`` is the sequence twice over, concatenated: a run of up to ``period`` tokens
    starting anywhere is one window of it, which is also how a verifier compares a received
    run with what was made.
    """

    def __init__(self, tokens: Sequence[str]) -> None:
        if not tokens:
            raise ValueError("a token cutter needs at least one token")
        size = len(tokens[0])
        if size < 1 or any(len(token) != size for token in tokens):
            raise ValueError("a token cutter's tokens must all be one length, at least 1")
        twice = [*tokens, *tokens]
        self.period = len(tokens)
        self.size = size
        self.joined = "".join(twice)
        self._split = size <= SPLIT_MAX_SIZE
        self._separated = SEPARATOR.join(twice) if self._split else ""
        if self._split and SEPARATOR in self.joined:
            raise ValueError("a token contains the separator (U+001F)")

    @staticmethod
    def chars_per_token(size: int) -> int:
        """Characters a cutter keeps per token of its period: the tokens twice, and short
        tokens twice more with their separators."""
        return 2 * size + (2 * size + 2 if size <= SPLIT_MAX_SIZE else 0)

    def cut(self, slot: int, count: int) -> list[str]:
        """Tokens ``slot .. slot + count - 1`` of the sequence (``slot < period``,
        ``count <= period``), each a new string."""
        if count <= 0:
            return []
        size = self.size
        if self._split:
            step = size + 1
            start = slot * step
            return self._separated[start: start + count * step - 1].split(SEPARATOR)
        start = slot * size
        joined = self.joined
        return [joined[offset: offset + size]
                for offset in range(start, start + count * size, size)]
