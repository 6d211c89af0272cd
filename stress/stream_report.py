"""What the stream verifier saw over one run (stress.streams), for the judge and the reports."""

from __future__ import annotations

from dataclasses import dataclass

from stress.histogram import LatencySummary


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
