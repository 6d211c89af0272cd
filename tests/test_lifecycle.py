"""The lifecycle's verdicts and records, without processes (the runner's tests run them)."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest

from stress.config.scenario import ScenarioError, build_scenario
from stress.config.scenarios import load_scenarios
from stress.engine.harness import harness_for
from stress.engine.leftovers import Leftovers, LeftTask, attribute, judge_leftovers, take_tasks
from stress.engine.lifecycle import (
    DEFAULT_QUIT_LATENCY_MS,
    Lifecycle,
    contract_failures,
    judged_scenario,
)
from stress.engine.protocol import ChildFigures, ProtocolError, RunFigures
from stress.results import Metrics

SCENARIOS = load_scenarios()


def test_pacing_is_judged_against_the_ideal_time() -> None:
    rapid = SCENARIOS["rapid"].scaled(0.01)  # 10,000 tokens at 10 us: 0.1 s at the least
    fast = Metrics(tokens_received=10_000, messages_sent=10_000, duration_s=0.02)
    (failure,) = contract_failures(rapid, fast)
    assert failure.kind == "pacing"
    assert failure.headline == "FAILURE: Target ignores the scenario's pacing"
    assert contract_failures(rapid, dataclasses.replace(fast, duration_s=0.11)) == []
    # The consumer's pacing counts every conversation's tokens.
    backpressure = SCENARIOS["backpressure"].scaled(0.01)  # 1,000 tokens x 100 us = 0.1 s
    assert [f.kind for f in contract_failures(
        backpressure, Metrics(tokens_received=1000, duration_s=0.01))] == ["pacing"]
    # Too short an ideal to tell pacing from scheduling noise; unpaced scenarios never.
    assert contract_failures(rapid.scaled(0.1), Metrics(tokens_received=1000,
                                                        duration_s=0.0001)) == []
    assert contract_failures(SCENARIOS["short"], fast) == []


def test_error_injection_must_fail_some_conversations() -> None:
    errors = SCENARIOS["errors"]  # 100 conversations at 0.1: 10 must fail
    (failure,) = contract_failures(errors, Metrics(tokens_received=10, duration_s=1.0))
    assert failure.message == ("No conversation failed, though error_rate 0.1 asks for 10 of "
                               "100 to fail")
    assert contract_failures(errors, Metrics(tokens_received=10, errors=10,
                                             duration_s=1.0)) == []


def test_quit_defaults_to_the_seed_bound_only_when_measured() -> None:
    short = SCENARIOS["short"]
    judged = judged_scenario(short, Metrics(quit_latency_ms=5.0))
    assert judged.thresholds.max_quit_latency_ms == DEFAULT_QUIT_LATENCY_MS
    assert judged_scenario(short, Metrics(quit_latency_ms=None)) is short
    rapid = SCENARIOS["rapid"]
    assert judged_scenario(rapid, Metrics(quit_latency_ms=5.0)) is rapid


def test_leftovers_cross_the_child_boundary() -> None:
    record = Leftovers(checkpoint="run", threads=("worker",), processes=("pid 1 (x)",),
                       orphans=("pid 2 (sleep 60)",), judged=False,
                       tasks=(LeftTask(repr="<Task pending>", name="lib.watch", origin="lib",
                                       ignored=True),))
    figures = ChildFigures(run=RunFigures(duration_s=1.0, messages_sent=1, tokens_received=1,
                                          streams_completed=1, errors=0),
                           teardown_error="OSError: x", leftovers=(record,))
    assert ChildFigures.from_json(figures.to_json()) == figures
    broken = figures.to_json().replace('"ignored": true', '"ignored": "yes"')
    with pytest.raises(ProtocolError, match="a task is malformed"):
        ChildFigures.from_json(broken)


def test_an_ignored_task_is_noted_once_and_a_target_task_fails() -> None:
    watcher = LeftTask(repr="<Task w>", name="sse_starlette.sse._shutdown_watcher",
                       origin="sse_starlette", ignored=True)
    mine = LeftTask(repr="<Task m>", name="app.Chat._beat", origin="the target")
    failures, notes = judge_leftovers([Leftovers(checkpoint="run", tasks=(watcher,)),
                                       Leftovers(checkpoint="quit", tasks=(watcher, mine))])
    assert notes == ["Ignored 1 task(s) left after the measured run (ignore_tasks): "
                     "sse_starlette.sse._shutdown_watcher"]
    (failure,) = failures
    assert failure.headline == "FAILURE: Quit left tasks running"
    assert failure.message == "Tasks left pending after quit under load: 1, started by the " \
                              "target (<Task m>)"
    assert attribute("sse_starlette.sse._shutdown_watcher", "app.target") == "sse_starlette"
    assert attribute("app.chat.Chat._beat", "app.target") == "the target"


def test_a_target_with_a_teardown_is_judged_after_it() -> None:
    handler = LeftTask(repr="<Task pending name='Task-12' coro=<run_asgi()>>",
                       name="uvicorn.protocols.http.h11_impl.RequestResponseCycle.run_asgi",
                       origin="uvicorn")
    watcher = LeftTask(repr="<Task pending name='Task-8' coro=<_shutdown_watcher()>>",
                       name="sse_starlette.sse._shutdown_watcher", origin="sse_starlette",
                       ignored=True)
    later = dataclasses.replace(watcher, repr=watcher.repr.replace(">>", " running>>"))
    failures, notes = judge_leftovers([
        Leftovers(checkpoint="quit", tasks=(handler, watcher), judged=False),
        Leftovers(checkpoint="teardown", tasks=(later,))])
    assert failures == []
    assert notes == [
        "Ignored 1 task(s) left after quit under load (ignore_tasks): "
        "sse_starlette.sse._shutdown_watcher",
        "1 task(s) still running after quit under load, left to the target's teardown: "
        "uvicorn.protocols.http.h11_impl.RequestResponseCycle.run_asgi"]
    (failure,) = judge_leftovers([Leftovers(checkpoint="teardown", tasks=(handler,))])[0]
    assert failure.headline == "FAILURE: Tasks left running after teardown"


def test_an_adopted_daemon_is_named_first_with_its_own_diagnosis() -> None:
    (failure,) = judge_leftovers([Leftovers(checkpoint="quit", processes=("pid 7 (worker)",),
                                            orphans=("pid 9 (sleep 60)",))])[0]
    assert failure.headline == "FAILURE: Target left processes running"
    assert failure.message == (
        "Processes left running after quit under load: pid 9 (sleep 60), re-parented to the "
        "kit after its parent exited, pid 7 (worker) (killed with their process group)")
    assert failure.diagnosis == (
        "A subprocess started without waiting for it or terminating it",
        "A daemonized subprocess (a double fork, setsid(), or one whose parent exited first) "
        "that nothing stops: keep its pid and terminate it in teardown")
    assert judge_leftovers([Leftovers(checkpoint="exit")]) == ([], [])


def test_a_task_is_recorded_before_it_is_cancelled() -> None:
    async def forever() -> None:
        await asyncio.Event().wait()

    async def main() -> tuple[tuple[LeftTask, ...], asyncio.Task[None]]:
        task = asyncio.create_task(forever(), name="mine")
        await asyncio.sleep(0)
        records = await take_tasks(exclude=(), target_module="tests.test_lifecycle", ignore=())
        return records, task

    (record,), task = asyncio.run(main())
    assert record.repr.startswith("<Task pending name='mine' coro=<")
    assert "cancelling" not in record.repr
    assert record.name.endswith("test_a_task_is_recorded_before_it_is_cancelled.<locals>."
                                "forever")
    assert record.origin == "the target"
    assert task.cancelled()


def test_a_context_manager_target_is_set_up_by_entering_it() -> None:
    class Served:
        async def run(self) -> None: ...

    class Server:
        entered = exited = False

        async def __aenter__(self) -> Served:
            self.entered = True
            return Served()

        async def __aexit__(self, *_exc: object) -> None:
            self.exited = True

    server = Server()
    life = Lifecycle(server)

    async def main() -> object:
        runnable = await life.setup(harness_for(SCENARIOS["short"])[0])
        await life.teardown()
        return runnable

    assert isinstance(asyncio.run(main()), Served)
    assert server.entered
    assert server.exited


def test_scenario_lifecycle_keys_are_validated() -> None:
    base = {"name": "x", "title": "X", "messages": 10}
    scenario = build_scenario({**base, "warmup_messages": 0, "ignore_tasks": ["lib.*"]},
                              where="s")
    assert (scenario.warmup_messages, scenario.ignore_tasks) == (0, ("lib.*",))
    with pytest.raises(ScenarioError, match=r"'ignore_tasks' is 'lib\.\*'; expected a list"):
        build_scenario({**base, "ignore_tasks": "lib.*"}, where="s")
    with pytest.raises(ScenarioError, match="'warmup_messages' is -1"):
        build_scenario({**base, "warmup_messages": -1}, where="s")
