"""The benchmark's workloads: the built-in scenarios' sizes, and the targets bench holds to.

The sizes come from stress/scenarios.yaml (one source for the seed's workloads); the
targets here are bench's own (a pipeline should beat the seed's baselines by far), judged
by :func:`stress.bench.bench.checks`.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Sequence
from dataclasses import dataclass

from stress.config.scenario import Scenario, Thresholds
from stress.config.scenarios import load_scenarios
from stress.errors import ConfigError

_MB = 1024 * 1024


@dataclass(frozen=True, kw_only=True)
class Workload:
    """A seed workload and the targets the measured target is held to on it."""

    scenario: Scenario
    min_throughput: float | None = None  # tokens/s
    min_ratio: float | None = None  # target / bare-queue ceiling
    max_memory_growth_mb: float | None = None
    max_memory_payload_factor: float | None = None  # growth <= factor x payload
    max_duration_error: float | None = None  # |duration - ideal| / ideal
    max_quit_latency_ms: float | None = None
    max_loss_pct: float | None = None
    measure_quit: bool = False
    repeat: int = 1  # fresh interpreters whose median is reported

    @property
    def name(self) -> str:
        return self.scenario.name


# The built-in scenarios bench measures, in the seed's order (its next steps last).
WORKLOAD_NAMES = ("short", "medium", "long", "rapid", "backpressure", "concurrent", "errors")


@functools.cache
def workloads() -> tuple[Workload, ...]:
    """Read when a benchmark runs, not at import: every command imports this module."""
    builtin = load_scenarios()

    def sized(name: str) -> Scenario:
        """The built-in scenario's sizes; bench judges its own targets, not the scenario's."""
        return dataclasses.replace(builtin[name], thresholds=Thresholds())

    return (
        Workload(scenario=sized("short"), min_throughput=500_000, min_ratio=0.30,
                 max_memory_growth_mb=30),
        Workload(scenario=sized("medium"), min_throughput=400_000,
                 max_memory_payload_factor=1.3),
        Workload(scenario=sized("long"), min_throughput=50_000, repeat=5),
        Workload(scenario=sized("rapid"), max_duration_error=0.10, max_quit_latency_ms=20,
                 measure_quit=True),
        Workload(scenario=sized("backpressure"), max_loss_pct=0.0, max_duration_error=0.10,
                 measure_quit=True),
        Workload(scenario=sized("concurrent"), max_loss_pct=0.0),
        Workload(scenario=sized("errors"), max_loss_pct=0.0),
    )


def workload_names() -> list[str]:
    return list(WORKLOAD_NAMES)


def select(names: Sequence[str]) -> list[Workload]:
    for name in names:
        if name not in WORKLOAD_NAMES:
            raise ConfigError(f"bench: unknown workload {name!r}; "
                              f"choose from {', '.join(WORKLOAD_NAMES)}")
    return [w for w in workloads() if not names or w.name in names]


def ideal_duration_s(scenario: Scenario) -> float | None:
    """How long pacing alone makes the run last (None when unpaced)."""
    producer = max(scenario.messages - 1, 0) * scenario.token_delay_us / 1e6
    consumer = scenario.expected_tokens * scenario.consumer_delay_us / 1e6
    ideal = max(producer, consumer)
    return ideal if ideal > 0 else None


def payload_mb(scenario: Scenario) -> float:
    return scenario.expected_tokens * scenario.message_size / _MB
