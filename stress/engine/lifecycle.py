"""A target's lifecycle around the measured window, and the verdicts on it.

In the child: :class:`Lifecycle` runs the target's optional ``async def setup(params)`` and
``async def teardown()`` (or its ``__aenter__``/``__aexit__`` when the target is an async
context manager), and :func:`warm_up` the scenario's optional discarded warm-up run. Setup and
the warm-up run before the memory baseline is taken and before the clock starts, so a server's
start-up is neither time nor growth of the run; teardown runs after quit under load, after the
measured run's end figures were recorded. Each is a phase with its own deadline.

In the parent: :func:`judge_phases` judges a child as a whole: a setup that failed or hung, a
quit or teardown that hung after the measured run (the measured run's figures and verdicts
stay, the hang is added), quit latency against the seed's 1 s when the scenario sets no limit,
what was left running, and a target that ignores the scenario's pacing or error injection.
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
import traceback
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from stress.config.scenario import Scenario
from stress.engine import judge
from stress.engine.harness import harness_for
from stress.engine.leftovers import judge_leftovers
from stress.results import Failure, Metrics, Status
from stress.target import Params, Target

if TYPE_CHECKING:
    from stress.engine.supervise import ChildRun

DEFAULT_QUIT_LATENCY_MS = 1000.0  # the seed document's bound on quit under load
PACING_FLOOR = 0.5  # a paced run faster than this share of its ideal time ignores pacing
MIN_IDEAL_S = 0.05  # below this, scheduling noise could beat the pacing: not judged
# Phases after the measured run ended: a hang there keeps the measured figures.
AFTER_RUN_PHASES = frozenset({"quit", "teardown", "done"})


class SetupFailed(Exception):
    """The target's setup or warm-up raised; the message is what it raised."""


class Lifecycle:
    """The target's optional setup/teardown, whichever way it spells them."""

    def __init__(self, target: Any) -> None:
        self._target = target
        self._context = hasattr(target, "__aenter__") and hasattr(target, "__aexit__")
        self.runnable: Target = target

    @property
    def owns_state(self) -> bool:
        """A target with a teardown owns what it runs (a server) until its teardown."""
        return self._context or callable(getattr(self._target, "teardown", None))

    async def setup(self, params: Params) -> Target:
        """Set the target up; returns the object whose ``run`` is measured (what
        ``__aenter__`` returned, when that has a ``run``)."""
        if self._context:
            entered = await self._target.__aenter__()
            if entered is not None and callable(getattr(entered, "run", None)):
                self.runnable = entered
        elif callable(setup := getattr(self._target, "setup", None)):
            await setup(params)
        return self.runnable

    async def teardown(self) -> None:
        if self._context:
            await self._target.__aexit__(None, None, None)
        elif callable(teardown := getattr(self._target, "teardown", None)):
            await teardown()


async def warm_up(scenario: Scenario, target: Target) -> None:
    """A discarded run of ``warmup_messages`` tokens per conversation (caches, JIT, pools)."""
    if scenario.warmup_messages > 0:
        warm, stats = harness_for(dataclasses.replace(scenario,
                                                      messages=scenario.warmup_messages))
        await target.run(warm, stats, asyncio.Event())


def describe_error(exc: BaseException) -> str:
    traceback.print_exception(exc)  # the full traceback goes to the scenario log
    return f"{type(exc).__name__}: {exc}"


# Verdicts (in the parent).

def setup_failure(error: str) -> Failure:
    return Failure(
        kind="setup",
        message=f"Target setup raised {error}; nothing was measured",
        headline="FAILURE: Target setup failed",
        diagnosis=("An exception in the target's setup() or warm-up (its traceback is in "
                   "the log)",),
    )


def teardown_failure(error: str) -> Failure:
    return Failure(
        kind="teardown",
        message=f"Target teardown raised {error}, after the measured run",
        headline="FAILURE: Target teardown failed",
        diagnosis=("An exception in the target's teardown() (its traceback is in the log)",),
    )


def phase_timeout(scenario: Scenario, took_s: float, phase: str,
                  blocked_loop: str | None = None) -> Failure:
    """A hang, named by the phase it happened in."""
    if phase in ("setup", "teardown"):
        return Failure(
            kind="timeout",
            message=f"Target {phase} had not finished after {took_s:.3f}s",
            headline=f"FAILURE: Target {phase} did not finish in {int(took_s)}s",
            diagnosis=(f"The target's {phase}() waits on something that never comes "
                       "(a server that does not start or stop, a connection never closed)",
                       "Its stacks are in the log (SIGUSR1 dump)"),
        )
    if phase == "done":
        return Failure(
            kind="exit",
            message=f"Target did not exit: the scenario process was still running "
                    f"{took_s:.3f}s after teardown (a non-daemon thread or an atexit hook)",
            headline="FAILURE: Target did not exit",
            diagnosis=("A non-daemon thread nobody stops or joins",),
        )
    return judge.timeout_failure(scenario, took_s, phase, blocked_loop)


def with_ignored_tasks(scenario: Scenario, patterns: tuple[str, ...]) -> Scenario:
    """The scenario with the run's ``ignore_tasks`` patterns added to its own."""
    extra = tuple(p for p in patterns if p not in scenario.ignore_tasks)
    return dataclasses.replace(scenario, ignore_tasks=scenario.ignore_tasks + extra) \
        if extra else scenario


def judged_scenario(scenario: Scenario, metrics: Metrics) -> Scenario:
    """The scenario with the default quit limit when it sets none and quit was measured
    (a quit not measured is judged only where the scenario asked for it)."""
    if scenario.thresholds.max_quit_latency_ms is not None or metrics.quit_latency_ms is None:
        return scenario
    return dataclasses.replace(scenario, thresholds=dataclasses.replace(
        scenario.thresholds, max_quit_latency_ms=DEFAULT_QUIT_LATENCY_MS))


def contract_failures(scenario: Scenario, metrics: Metrics) -> list[Failure]:
    """A finished run that could not have honoured the scenario: too fast for its pacing, or
    no failure where failures were injected."""
    failures = []
    conversations = max(1, scenario.conversations)
    received = metrics.tokens_received
    # The longest conversation carried at least the average; the consumer renders them all.
    ideal_s = max(received / conversations * scenario.token_delay_us,
                  received * scenario.consumer_delay_us) / 1e6
    if ideal_s >= MIN_IDEAL_S and metrics.duration_s < PACING_FLOOR * ideal_s:
        failures.append(Failure(
            kind="pacing",
            message=f"The run took {metrics.duration_s:.3f}s, under half the {ideal_s:.3f}s "
                    f"its pacing takes ({received} tokens, token_delay_us "
                    f"{scenario.token_delay_us:g}, consumer_delay_us "
                    f"{scenario.consumer_delay_us:g}, {conversations} conversation(s))",
            headline="FAILURE: Target ignores the scenario's pacing",
            diagnosis=("The target must wait token_delay_us between the tokens of a "
                       "conversation and consumer_delay_us per token it renders",),
        ))
    # As many as the harness's failure plan fails (stress.engine.harness): half rounds up. A
    # verified stream is judged conversation by conversation instead (stress.engine.verdicts).
    injected = math.floor(min(max(scenario.error_rate, 0.0), 1.0) * conversations + 0.5)
    if injected >= 1 and metrics.errors == 0 and not metrics.verified:
        failures.append(Failure(
            kind="pacing",
            message=f"No conversation failed, though error_rate {scenario.error_rate:g} asks "
                    f"for {injected} of {conversations} to fail",
            headline="FAILURE: Target ignores the scenario's error injection",
            diagnosis=("The target must fail error_rate × conversations conversations (half "
                       "rounds up) mid-stream and count each in stats.errors",),
        ))
    return failures


@dataclass(kw_only=True)
class PhaseVerdict:
    status: Status
    scenario: Scenario  # as judged: with the default quit limit where it applied
    measured: bool  # the measured run finished: its thresholds have verdicts
    failures: list[Failure] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def judge_phases(scenario: Scenario, run: ChildRun, metrics: Metrics) -> PhaseVerdict:
    """The verdict on one child: its measured run, then what came after it, added."""
    figures = run.figures
    measured_run = figures is not None and figures.run is not None
    after_run = measured_run and run.phase in AFTER_RUN_PHASES
    if run.status == "crashed" and not after_run:
        setup_error = figures.setup_error if figures is not None else None
        error = figures.error if figures is not None else None
        failure = setup_failure(setup_error) if setup_error \
            else judge.crash_failure(run.returncode or 0, error)
        return PhaseVerdict(status="crashed", scenario=scenario, measured=False,
                            failures=[failure])
    if run.status == "interrupted":
        return PhaseVerdict(status="interrupted", scenario=scenario, measured=False,
                            failures=[judge.interrupted_failure(run.elapsed_s)])
    if run.status == "timeout" and not after_run:
        return PhaseVerdict(status="timeout", scenario=scenario, measured=False,
                            failures=[phase_timeout(scenario, run.elapsed_s, run.phase,
                                                    run.blocked_loop)])
    assert figures is not None
    judged = judged_scenario(scenario, metrics)
    quit_ = figures.quit
    failures = judge.threshold_failures(judged, metrics, quit_, figures.run, figures.streams)
    failures.extend(contract_failures(scenario, metrics))
    notes = []
    if quit_ is not None and quit_.note:
        notes.append(quit_.note if judged.thresholds.max_quit_latency_ms is not None
                     else f"Quit latency not judged: {quit_.note}")
    left, ignored = judge_leftovers(figures.leftovers)
    failures.extend(left)
    notes.extend(ignored)
    if figures.teardown_error:
        failures.append(teardown_failure(figures.teardown_error))
    status: Status = "failed" if failures else "passed"
    # After the measured run: its figures and verdicts stay, the hang or crash is added.
    if run.status == "timeout":
        failures.append(phase_timeout(scenario, run.elapsed_s, run.phase, run.blocked_loop))
        status = "timeout"
    elif run.status == "crashed":
        failures.append(judge.crash_failure(run.returncode or 0, figures.error))
        status = "crashed"
    return PhaseVerdict(status=status, scenario=judged, measured=True, failures=failures,
                        notes=notes)
