"""Typed scenario configuration: what to run and what counts as passing."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, kw_only=True)
class Thresholds:
    """Pass criteria; ``None`` means the metric is reported but not judged."""

    min_throughput: float | None = None  # tokens/s
    max_memory_growth_mb: float | None = None
    max_quit_latency_ms: float | None = None
    max_loss_pct: float | None = None
    max_leaked_mb: float | None = None  # judged only on a memray run


@dataclass(frozen=True, kw_only=True)
class Scenario:
    """One stress scenario. Its field names are the YAML keys and what targets read."""

    name: str  # identifier used on the command line and in file names
    title: str  # the heading of the report block, e.g. "1M Short Messages"
    messages: int  # tokens per conversation
    message_size: int = 10  # characters per token
    token_delay_us: float = 0.0  # producer pacing per token
    channel_buffer: int = 100
    consumer_delay_us: float = 0.0  # consumer pacing per message
    conversations: int = 1
    error_rate: float = 0.0  # fraction of conversations whose backend fails mid-stream
    timeout_s: float = 60.0
    thresholds: Thresholds = field(default_factory=Thresholds)

    @property
    def expected_tokens(self) -> int:
        return self.messages * self.conversations

    def scaled(self, factor: float) -> Scenario:
        """A copy with message counts multiplied by ``factor`` (at least one message)."""
        if factor == 1.0:
            return self
        return dataclasses.replace(self, messages=max(1, round(self.messages * factor)))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Scenario:
        fields = dict(data)
        fields["thresholds"] = Thresholds(**fields.get("thresholds", {}))
        return cls(**fields)
