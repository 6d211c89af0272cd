"""The kit's figure for a target against the same target run standalone, on this machine.

    python ci/standalone_ratio.py [--pairs 31] [--seconds 0.5] [--target MODULE:ATTR ...]
                                  [--sample-interval S] [--messages N]

"Standalone" is the target's ``run`` in a fresh interpreter of its own, under ``asyncio.run``
and timed around the call, the way a user would time it without the kit; "the kit" is
``python -m stress run`` on the same scenario, its metrics' throughput. Each pair runs one of
each, alternating which goes first, so a drift in the machine's load falls on both; the median
of the pairs' kit/standalone ratios is the figure, with its 95% interval (distribution-free,
stress.stats.median_interval).

Many short pairs rather than a few long ones: on a shared VM a process runs at its own speed
for its whole life (the same loop, timed five times in one process, agrees to about 2%; in
separate processes it spreads over 20%, even two processes sharing one CPU), so the noise is
per process, and only more processes narrow the interval.

The bound: the kit's figure is within BOUND_PCT of the standalone one. Verdict "holds" (exit 0)
when every target's median ratio is at least 1 - BOUND_PCT/100, "does NOT hold" (exit 1)
otherwise, exit 2 when a run failed. One line per target, then the verdict.

The default targets are the reference pipeline and a plain asyncio.Queue pipeline like the
README's example (tests.user_targets:echo).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))  # this checkout's kit, also when run as a plain script

from stress.process import child_environment  # noqa: E402
from stress.stats import median, median_interval, throughput  # noqa: E402

SCENARIO = "standalone"
DEFAULT_TARGETS = ("stress.pipeline:reference", "tests.user_targets:echo")
BOUND_PCT = 2.0
PROBE_MESSAGES = 200_000

EXIT_HOLDS, EXIT_EXCEEDED, EXIT_RUN_FAILED = 0, 1, 2


class RunFailedError(Exception):
    """A run gave no throughput: the script cannot give a figure."""


@dataclass(frozen=True, kw_only=True)
class Figure:
    """One target's figures: the kit/standalone ratio of each pair."""

    target: str
    ratios: tuple[float, ...]
    kit: tuple[float, ...]  # tokens/s under the kit, one per pair
    standalone: tuple[float, ...]

    @property
    def ratio(self) -> float:
        return median(self.ratios)

    @property
    def holds(self) -> bool:
        return self.ratio >= 1 - BOUND_PCT / 100

    def line(self) -> str:
        low, high = median_interval(self.ratios)
        return (f"{self.target}: kit/standalone {self.ratio:.3f} (95% interval "
                f"{low:.3f}..{high:.3f}, pairs {min(self.ratios):.3f}..{max(self.ratios):.3f}; "
                f"kit {median(self.kit):,.0f} tokens/s, standalone "
                f"{median(self.standalone):,.0f} tokens/s, {len(self.ratios)} pairs)")


def verdict(figures: list[Figure]) -> tuple[str, int]:
    """The verdict line and the exit code: every target within the bound, or not."""
    bound = f"bound: the kit's figure is within {BOUND_PCT:g}% of standalone: "
    outside = [f for f in figures if not f.holds]
    if not outside:
        return bound + "holds", EXIT_HOLDS
    worst = min(outside, key=lambda f: f.ratio)
    return (bound + f"does NOT hold ({', '.join(f.target for f in outside)}; "
            f"{(1 - worst.ratio) * 100:.2f}% below standalone)"), EXIT_EXCEEDED


def kit_env() -> dict[str, str]:
    """This checkout's kit; no CI variables, so the runs do not write to a job page."""
    return child_environment(quiet_ci=True, extra={"PYTHONPATH": str(REPO)})


def write_scenarios(path: Path, messages: int) -> None:
    # No thresholds: every run passes, and its throughput is the only figure used.
    path.write_text(f"scenarios:\n  {SCENARIO}:\n    title: Standalone Ratio\n"
                    f"    messages: {messages}\n    timeout_s: 600\n", encoding="utf-8")


def run_kit(work: Path, target: str, sample_interval: float | None) -> float:
    out = work / "kit"
    interval = [] if sample_interval is None else ["--sample-interval", repr(sample_interval)]
    done = subprocess.run(
        [sys.executable, "-m", "stress", "run", SCENARIO, "--scenarios",
         str(work / "scenarios.yaml"), "--target", target, "--no-evidence", *interval,
         "--out", str(out)],
        cwd=work, env=kit_env(), capture_output=True, text=True, check=False)
    try:
        document = json.loads((out / "results.json").read_text(encoding="utf-8"))
        (result,) = document["scenarios"]
    except (OSError, ValueError) as exc:
        raise RunFailedError(f"{target} under the kit: no results ({exc}); the run said:\n"
                             f"{done.stdout}{done.stderr}") from None
    if result["status"] != "passed":
        raise RunFailedError(f"{target} under the kit ended as {result['status']}")
    return float(result["metrics"]["throughput"])


def run_standalone(work: Path, target: str) -> float:
    done = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--standalone-child", target,
         str(work / "scenarios.yaml")],
        cwd=work, env=kit_env(), capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RunFailedError(f"{target} standalone failed:\n{done.stdout}{done.stderr}")
    return float(done.stdout)


def standalone_child(target_name: str, scenarios: Path) -> int:
    """The target alone: asyncio.run, timed around its run(); prints tokens/s."""
    import asyncio

    from stress.config.scenarios import load_scenarios
    from stress.engine.harness import harness_for
    from stress.target import load_target

    scenario = load_scenarios(scenarios)[SCENARIO]
    target = load_target(target_name)()
    # The harness's params and stats, as the kit hands them: only the kit's supervision and
    # sampling differ between the two sides.
    params, stats = harness_for(scenario)

    async def measure() -> float:
        started = time.perf_counter()
        await target.run(params, stats, asyncio.Event())
        return time.perf_counter() - started

    seconds = asyncio.run(measure())
    print(throughput(stats.tokens_received, seconds))
    return 0


def calibrate(work: Path, target: str, seconds: float) -> int:
    write_scenarios(work / "scenarios.yaml", PROBE_MESSAGES)
    return max(1, round(seconds * run_standalone(work, target)))


def measure(work: Path, target: str, *, pairs: int, messages: int,
            sample_interval: float | None) -> Figure:
    write_scenarios(work / "scenarios.yaml", messages)
    kit: list[float] = []
    alone: list[float] = []
    for number in range(pairs):
        if number % 2 == 0:
            kit.append(run_kit(work, target, sample_interval))
            alone.append(run_standalone(work, target))
        else:
            alone.append(run_standalone(work, target))
            kit.append(run_kit(work, target, sample_interval))
        print(f"  {target} pair {number + 1}/{pairs}: kit {kit[-1]:,.0f}, standalone "
              f"{alone[-1]:,.0f} tokens/s; {kit[-1] / alone[-1]:.3f}", flush=True)
    return Figure(target=target, ratios=tuple(k / a for k, a in zip(kit, alone, strict=True)),
                  kit=tuple(kit), standalone=tuple(alone))


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--pairs", type=int, default=31, help="pairs per target (default 31)")
    parser.add_argument("--seconds", type=float, default=0.5,
                        help="how long one run should last (default 0.5)")
    parser.add_argument("--messages", type=int, help="messages per run, instead of --seconds")
    parser.add_argument("--target", action="append", help="a target (repeatable); default: "
                        + ", ".join(DEFAULT_TARGETS))
    parser.add_argument("--sample-interval", type=float,
                        help="passed to the kit's run (default: the kit's own default)")
    args = parser.parse_args(argv)
    if args.pairs < 1:
        parser.error("--pairs: expected a whole number >= 1")
    if args.seconds <= 0 or (args.sample_interval is not None and args.sample_interval <= 0):
        parser.error("--seconds and --sample-interval: expected seconds > 0")
    if args.messages is not None and args.messages < 1:
        parser.error("--messages: expected a whole number >= 1")
    return args


def main(argv: list[str]) -> int:
    if argv[:1] == ["--standalone-child"]:
        return standalone_child(argv[1], Path(argv[2]))
    args = parse_args(argv)
    targets = args.target or list(DEFAULT_TARGETS)
    figures = []
    with tempfile.TemporaryDirectory(prefix="stress-standalone-") as tmp:
        work = Path(tmp)
        try:
            for target in targets:
                messages = args.messages or calibrate(work, target, float(args.seconds))
                print(f"{target}: {messages:,} tokens of 10 characters per run, unpaced",
                      flush=True)
                figures.append(measure(work, target, pairs=int(args.pairs), messages=messages,
                                       sample_interval=args.sample_interval))
        except RunFailedError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_RUN_FAILED
    for figure in figures:
        print(figure.line())
    text, code = verdict(figures)
    print(text)
    return code


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
