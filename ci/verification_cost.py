"""What verifying every token (and stamping its latency) costs the reference pipeline.

    python ci/verification_cost.py [--rounds 15] [--scale 1.0] [--scenario short]
    nox -s verification-cost    the same, with the verifier compiled (STRESS_KIT_COMPILE=1)

It measures the kit it imports: an installed one (compiled or not), else this checkout's
source, and says which.

The reference pipeline runs the built-in scenario through the engine (stress.engine.supervise,
one fresh child per run), verified as always, and as a counter-only variant of the same
target: the same pipeline, its tokens made by the backend's own TokenTexts and its consumer's
``stats.receive/end/fail`` turned into counter increments, so the harness checks nothing and
stamps nothing. Both make their tokens with the same cutter (stress.token_cutter), so the
ratio is what checking and stamping cost, not a difference in how tokens are made. The two
alternate, which goes first alternating too, so a drift in the
machine's load falls on both; each round gives the ratio verified / counter-only, and the
median of the rounds is the cost. Goal: at least 0.90. Exit 0 when the median meets it, 1 when
not, 2 when a run failed.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
from pathlib import Path
from typing import Any, cast

REPO = Path(__file__).resolve().parent.parent
try:
    import stress  # an installed kit, compiled or not, is the one measured
except ModuleNotFoundError:
    sys.path.insert(0, str(REPO))  # else this checkout's source
    import stress

from stress.config.scenarios import load_scenarios  # noqa: E402
from stress.engine.options import Deadlines  # noqa: E402
from stress.engine.runner import run_throughput  # noqa: E402
from stress.engine.supervise import run_child  # noqa: E402
from stress.pipeline.backend import TokenTexts  # noqa: E402
from stress.pipeline.conductor import MAX_RUN, ReferencePipeline  # noqa: E402
from stress.stats import median  # noqa: E402
from stress.target import Params, Stats  # noqa: E402
from stress.verifier_build import verifier_build  # noqa: E402

GOAL = 0.90
VERIFIED = "stress.pipeline:reference"
COUNTER_ONLY = "verification_cost:counter_only"  # this file, on the children's path


class _OwnTokens:
    """The scenario's fields, with tokens the backend makes itself (nothing stamped)."""

    def __init__(self, params: Params) -> None:
        self._params = params
        self._texts = TokenTexts(int(params.message_size), MAX_RUN)

    def tokens(self, _conversation: int, start: int, count: int) -> list[str]:
        return self._texts.make(start, count)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._params, name)


class _Counters:
    """``receive/end/fail`` as counter increments: what the pipeline did before verification."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.messages_sent = 0
        self.tokens_received = 0
        self.streams_completed = 0
        self.errors = 0

    def receive(self, conversation: int, text: str) -> None:
        self.tokens_received += len(text) // self.size

    def end(self, conversation: int) -> None:
        self.streams_completed += 1

    def fail(self, conversation: int, error: object) -> None:
        self.errors += 1


class CounterOnlyPipeline(ReferencePipeline):
    """The reference pipeline without the harness's verification, counting as it used to."""

    async def run(self, params: Params, stats: Stats, quit: asyncio.Event) -> None:
        counters = _Counters(int(params.message_size))
        try:
            await super().run(_OwnTokens(params), cast(Stats, counters), quit)
        finally:
            stats.messages_sent = counters.messages_sent
            stats.tokens_received = counters.tokens_received
            stats.streams_completed = counters.streams_completed
            stats.errors = counters.errors


def counter_only() -> CounterOnlyPipeline:
    return CounterOnlyPipeline()


def _measure(target: str, scenario: Any) -> float | None:
    with tempfile.TemporaryFile("w+", encoding="utf-8") as log_file:  # the child's output
        run = run_child(scenario, target=target, loop="asyncio", log_file=log_file,
                        deadlines=Deadlines(run_s=scenario.timeout_s), measure_quit=False)
    return run_throughput(run) if run.status == "ok" else None


def _children_use_this_kit() -> None:
    """Each run's child imports the kit measured here and this file's counter-only target.

    A child starts in the working folder, which comes first on its path: in a checkout, its
    ``stress`` source would stand in for an installed (compiled) kit. So the children start in
    an empty folder, with this file's folder and, for a checkout's kit, the checkout on their
    path.
    """
    kit_root = Path(stress.__file__).resolve().parent.parent
    paths = [str(REPO / "ci"), *([str(kit_root)] if kit_root == REPO else [])]
    os.environ["PYTHONPATH"] = os.pathsep.join(paths)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--scenario", default="short")
    args = parser.parse_args(argv)
    scenario = load_scenarios()[args.scenario].scaled(args.scale)
    _children_use_this_kit()
    print(f"kit: {Path(stress.__file__).parent}, verifier {verifier_build()}")
    with tempfile.TemporaryDirectory(prefix="verification-cost-") as folder:
        os.chdir(folder)
        return _alternate(scenario, args)


def _alternate(scenario: Any, args: argparse.Namespace) -> int:
    ratios: list[float] = []
    for round_ in range(args.rounds):
        order = (VERIFIED, COUNTER_ONLY) if round_ % 2 == 0 else (COUNTER_ONLY, VERIFIED)
        figures = {target: _measure(target, scenario) for target in order}
        verified, counted = figures[VERIFIED], figures[COUNTER_ONLY]
        if verified is None or counted is None:
            print(f"round {round_ + 1}: a run failed", file=sys.stderr)
            return 2
        ratios.append(verified / counted)
        print(f"round {round_ + 1}: verified {verified:,.0f} tokens/s, counter-only "
              f"{counted:,.0f} tokens/s, ratio {ratios[-1]:.3f}")
    cost = median(ratios)
    print(f"{args.scenario} x{args.scale:g}, {args.rounds} alternating rounds: median ratio "
          f"verified / counter-only {cost:.3f} (goal >= {GOAL}; rounds "
          f"{min(ratios):.3f}..{max(ratios):.3f})")
    return 0 if cost >= GOAL else 1


if __name__ == "__main__":
    raise SystemExit(main())
