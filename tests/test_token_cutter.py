"""The token cutter: runs of tokens cut by splitting or slicing are the same new strings."""

from __future__ import annotations

import pytest

from stress.token_cutter import SPLIT_MAX_SIZE, TokenCutter


def tokens_of(size: int, period: int) -> list[str]:
    return [f"{slot:>{size}}"[-size:] for slot in range(period)]


@pytest.mark.parametrize("size", [1, 10, SPLIT_MAX_SIZE, SPLIT_MAX_SIZE + 1, 5000])
def test_a_run_is_the_tokens_in_order_wherever_it_starts_and_wraps(size: int) -> None:
    tokens = tokens_of(size, 50)
    cutter = TokenCutter(tokens)
    assert cutter.joined == "".join(tokens * 2)
    for slot, count in ((0, 50), (10, 5), (45, 50), (49, 1), (0, 1)):
        assert cutter.cut(slot, count) == [tokens[(slot + i) % 50] for i in range(count)]
    assert cutter.cut(3, 0) == []


def test_each_token_is_a_new_string() -> None:
    cutter = TokenCutter(tokens_of(10, 20))
    first, second = cutter.cut(0, 20), cutter.cut(0, 20)
    assert all(a == b and a is not b for a, b in zip(first, second, strict=True))


def test_tokens_of_different_lengths_or_with_the_separator_are_refused() -> None:
    with pytest.raises(ValueError, match="one length"):
        TokenCutter(["ab", "abc"])
    with pytest.raises(ValueError, match="separator"):
        TokenCutter(["a\x1fb", "abc"])
    with pytest.raises(ValueError, match="at least one token"):
        TokenCutter([])
