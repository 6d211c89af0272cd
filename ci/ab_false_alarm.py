"""How often the ab gate cries wolf, and the smallest slowdown it catches, on this machine.

    python ci/ab_false_alarm.py [--self-runs 10] [--slow-runs 3] [--factors 1.35,1.5]
                                [--rounds 5] [--confirm 5] [--seconds 1.0] [--max-drop 20]

A temporary git repository holds a streaming target (producers -> bounded asyncio queue ->
consumer doing a fixed amount of work per token), committed once as it is and once per slowdown
factor with that much more work per token. The gate (`python -m stress ab`, this checkout's
kit) then compares the first commit with itself --self-runs times on the built-in `short` and
`concurrent` scenarios, and with each slowed commit --slow-runs times on `short`. Scenarios are
scaled so each run takes about --seconds. Each figure is given before and after the gate's
confirmation rounds (a scenario below the limit is measured again, later). Prints figures; the
exit code is 0 unless a gate run could not produce a verdict. About 15 minutes with the
defaults on a 2-core machine.

A 20% drop (head/base 0.80) is what 1.25x the work per token gives, so x1.25 is flagged about
half the time by design; the figures answer how far beyond it detection becomes certain, and
how rarely identical code is flagged. The resampled table adds x1.25, x1.75 and other round
counts.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))  # this checkout's kit, as the gate runs it

from stress.process import child_environment  # noqa: E402  (after the checkout is on the path)
from stress.results import parse_results_document  # noqa: E402
from stress.stats import median, percentile  # noqa: E402

TARGET = "bench_target:pipeline"
SELF_SCENARIOS = ("short", "concurrent")
SLOW_SCENARIO = "short"
SHORT_MESSAGES = 1_000_000  # the built-in `short` scenario; `concurrent` sends as many tokens

TARGET_SOURCE = '''"""A token streamer for the gate's benchmark: WORK * SLOWDOWN steps a token."""

import asyncio

WORK = 200  # per-token work of the consumer (rendering, say)
SLOWDOWN = {slowdown!r}


class Pipeline:
    async def run(self, params, stats, quit):
        queue = asyncio.Queue(maxsize=params.channel_buffer)
        work = round(WORK * SLOWDOWN)

        async def produce(conversation):
            for i in range(params.messages):
                await queue.put(f"{{conversation}}:{{i}}".ljust(params.message_size, "x"))
                stats.messages_sent += 1
            await queue.put(None)

        async def consume():
            ended = 0
            while ended < params.conversations:
                token = await queue.get()
                if token is None:
                    ended += 1
                    stats.streams_completed += 1
                    continue
                total = 0
                for i in range(work):
                    total += i * i
                stats.tokens_received += 1

        async with asyncio.TaskGroup() as tasks:
            for conversation in range(params.conversations):
                tasks.create_task(produce(conversation))
            tasks.create_task(consume())


def pipeline():
    return Pipeline()
'''


def kit_env(extra_path: Path | None = None) -> dict[str, str]:
    """This checkout's kit first; no CI variables, so the runs do not write to a job page."""
    path = os.pathsep.join(str(p) for p in (extra_path, REPO) if p is not None)
    return child_environment(quiet_ci=True, extra={"PYTHONPATH": path})


def git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-c", "user.name=Benchmark", "-c", "user.email=bench@example.com",
                    *args], cwd=repo, check=True, capture_output=True)


def tag_of(factor: float) -> str:
    return f"s{factor:.2f}"


def make_repo(root: Path, factors: list[float]) -> Path:
    repo = root / "repo"
    repo.mkdir()
    git(repo, "init", "-q")
    for factor in [1.0, *factors]:
        (repo / "bench_target.py").write_text(TARGET_SOURCE.format(slowdown=factor),
                                              encoding="utf-8")
        git(repo, "add", "bench_target.py")
        git(repo, "commit", "-q", "--allow-empty", "-m", f"per-token work x{factor:g}")
        git(repo, "tag", tag_of(factor))
    git(repo, "checkout", "-q", tag_of(1.0))
    return repo


def calibrate(repo: Path, root: Path, seconds: float) -> float:
    """The --scale at which `short` takes about `seconds` with the unslowed target."""
    out = root / "calibration"
    probe_scale = 0.02
    subprocess.run([sys.executable, "-m", "stress", "run", SLOW_SCENARIO, "--scale",
                    str(probe_scale), "--target", TARGET, "--no-evidence", "--out", str(out)],
                   cwd=root, env=kit_env(repo), check=True, capture_output=True)
    (result,) = parse_results_document(json.loads((out / "results.json").read_text(
        encoding="utf-8")))
    throughput = result.metrics.throughput
    scale = round(seconds * throughput / SHORT_MESSAGES, 4)
    print(f"calibration: {throughput:,.0f} tokens/s unslowed -> --scale {scale} "
          f"({scale * SHORT_MESSAGES:,.0f} tokens per run, about {seconds:g}s)")
    return scale


def gate(repo: Path, out: Path, refs: tuple[str, str], scenarios: tuple[str, ...], *,
         args: argparse.Namespace, scale: float) -> tuple[dict[str, Any], float]:
    started = time.monotonic()
    subprocess.run([sys.executable, "-m", "stress", "ab", *refs, *scenarios,
                    "--target", TARGET, "--scale", str(scale), "--rounds", str(args.rounds),
                    "--confirm", str(args.confirm),
                    "--max-drop", str(args.max_drop), "--repo", str(repo), "--out", str(out)],
                   cwd=out.parent, env=kit_env(), check=False, capture_output=True)
    elapsed = time.monotonic() - started
    document: dict[str, Any] = json.loads((out / "ab.json").read_text(encoding="utf-8"))
    return document, elapsed


def load_text() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def spread_text(ratios: list[float]) -> str:
    return f"{min(ratios):.2f}..{max(ratios):.2f}" if ratios else "-"


@dataclass
class SelfFigures:
    """What the gate said about identical code, over all self-comparison runs."""

    gate_alarms: int = 0  # gate runs that failed on a regression
    scenario_alarms: int = 0  # scenario verdicts of regression
    suspects: int = 0  # scenario verdicts below the limit before confirmation rounds
    gate_suspects: int = 0
    problems: int = 0
    medians: list[float] = field(default_factory=list)  # of each scenario's first --rounds
    ratios: list[float] = field(default_factory=list)  # the single rounds among those

    def add(self, document: dict[str, Any], rounds: int) -> None:
        """Count one gate run's ab.json."""
        verdicts = [s["verdict"] for s in document["scenarios"]]
        suspected = [s for s in document["scenarios"] if s["confirmation"] is not None]
        self.problems += verdicts.count("failed")
        self.scenario_alarms += verdicts.count("regression")
        self.gate_alarms += "regression" in verdicts
        self.suspects += len(suspected)
        self.gate_suspects += bool(suspected)
        for s in document["scenarios"]:
            first = s["ratios"][:rounds]
            if first:
                self.medians.append(median(first))
                self.ratios.extend(first)


@dataclass
class Detection:
    """What the gate said about one slowdown factor, over its gate runs."""

    suspected: int = 0  # runs below the limit after the first --rounds
    flagged: int = 0  # runs flagged in the end
    problems: int = 0  # comparisons without figures
    medians: list[float] = field(default_factory=list)  # final median ratios

    def add(self, document: dict[str, Any], rounds: int, limit: float) -> None:
        """Count one gate run's ab.json (a single scenario)."""
        (s,) = document["scenarios"]
        self.problems += s["verdict"] == "failed"
        self.flagged += s["verdict"] == "regression"
        first = s["ratios"][:rounds]
        self.suspected += bool(first) and median(first) < limit
        if s["median_ratio"] is not None:
            self.medians.append(s["median_ratio"])


def self_line(document: dict[str, Any]) -> str:
    return ", ".join(f"{s['name']} {s['median_ratio'] or 0:.3f} "
                     f"({spread_text(s['ratios'])}) {s['verdict']}"
                     + (f" after confirming {s['confirmation']['median_before']:.3f}"
                        if s["confirmation"] else "")
                     for s in document["scenarios"])


def self_comparisons(repo: Path, root: Path, args: argparse.Namespace, scale: float
                     ) -> SelfFigures:
    """Gate runs of the unslowed commit against itself: the alarms, the median ratios (of
    the first --rounds) and the single-round ratios of those first rounds."""
    figures = SelfFigures()
    for i in range(1, args.self_runs + 1):
        document, elapsed = gate(repo, root / f"self-{i}", (tag_of(1.0), tag_of(1.0)),
                                 SELF_SCENARIOS, args=args, scale=scale)
        figures.add(document, args.rounds)
        print(f"self {i}/{args.self_runs}: {self_line(document)}  [{elapsed:.0f}s]", flush=True)
    return figures


def detections(repo: Path, root: Path, args: argparse.Namespace, scale: float,
               factors: list[float]) -> dict[float, Detection]:
    """Gate runs of the unslowed commit against each slowed one, per factor."""
    found: dict[float, Detection] = {}
    for factor in factors:
        detection = found[factor] = Detection()
        for i in range(1, args.slow_runs + 1):
            document, elapsed = gate(repo, root / f"slow-{factor:g}-{i}",
                                     (tag_of(1.0), tag_of(factor)), (SLOW_SCENARIO,),
                                     args=args, scale=scale)
            detection.add(document, args.rounds, 1 - args.max_drop / 100)
            (s,) = document["scenarios"]
            print(f"x{factor:g} {i}/{args.slow_runs}: median {s['median_ratio'] or 0:.3f} "
                  f"({spread_text(s['ratios'])}) {s['verdict']}  [{elapsed:.0f}s]", flush=True)
    return found


def smallest_caught(detection: dict[float, Detection], runs: int) -> float | None:
    """The smallest factor flagged in every run, as was every larger one."""
    caught = [f for f in sorted(detection)
              if all(detection[g].flagged == runs for g in detection if g >= f)]
    return caught[0] if caught else None


def flag_rate(ratios: list[float], factor: float, *, limit: float, rounds: int, confirm: int,
              rng: random.Random, draws: int) -> float:
    flagged = 0
    for _ in range(draws):
        drawn = [r / factor for r in rng.choices(ratios, k=rounds)]
        if median(drawn) < limit and confirm:
            drawn += [r / factor for r in rng.choices(ratios, k=confirm)]
        flagged += median(drawn) < limit
    return flagged / draws


def resampled(ratios: list[float], factors: list[float], args: argparse.Namespace) -> None:
    """Flag rates for other round counts, drawn from the identical-code rounds: a slowdown by
    f scales each round's ratio by 1/f. Rounds are treated as independent, which they are
    only roughly (a busy minute touches several), so these are estimates beside the counts."""
    rng = random.Random(2024)
    draws = 10_000
    factors = sorted({1.25, *factors, 1.75})
    print(f"Resampled from the {len(ratios)} identical-code rounds ({draws:,} draws each):")
    print("  rounds  " + "  ".join(f"{'x' + format(f, 'g'):>6}" for f in [1.0, *factors]))
    plans = [(n, 0) for n in (3, 5, 7, 9)] + [(args.rounds, args.confirm)] * bool(args.confirm)
    for rounds, confirm in plans:
        rates = [flag_rate(ratios, f, limit=1 - args.max_drop / 100, rounds=rounds,
                           confirm=confirm, rng=rng, draws=draws) for f in [1.0, *factors]]
        plan = f"{rounds}+{confirm}" if confirm else str(rounds)
        print(f"  {plan:<6}  " + "  ".join(f"{rate:>6.1%}" for rate in rates))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--self-runs", type=int, default=10)
    parser.add_argument("--slow-runs", type=int, default=3)
    parser.add_argument("--factors", default="1.35,1.5",
                        help="per-token work of head relative to base, comma-separated")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--confirm", type=int, default=5)
    parser.add_argument("--max-drop", type=float, default=20.0)
    parser.add_argument("--seconds", type=float, default=1.0, help="length of one run")
    args = parser.parse_args()
    factors = sorted(float(f) for f in args.factors.split(","))
    print(f"{os.cpu_count()} CPUs; gate: --rounds {args.rounds}, regression when median "
          f"head/base < {1 - args.max_drop / 100:.2f} (a drop of more than {args.max_drop:g}%); "
          f"load average {load_text()}")
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="ab-false-alarm-") as temp:
        root = Path(temp)
        repo = make_repo(root, factors)
        scale = calibrate(repo, root, args.seconds)
        found = self_comparisons(repo, root, args, scale)
        detection = detections(repo, root, args, scale, factors)
    print("\n" + "\n".join(summary_lines(args, found, detection)))
    if found.ratios:
        resampled(found.ratios, factors, args)
    print(verdict_line(factors, detection, args.slow_runs))
    print(f"Took {time.monotonic() - started:.0f}s; load average {load_text()} at the end "
          "(other work on the machine widens the spread)")
    problems = found.problems + sum(d.problems for d in detection.values())
    if problems:
        print(f"{problems} scenario comparison(s) produced no figures; see the gate's output")
    return 1 if problems else 0


def summary_lines(args: argparse.Namespace, found: SelfFigures,
                  detection: dict[float, Detection]) -> list[str]:
    """The false alarms on identical code, then the detection table per slowdown factor."""
    verdicts = args.self_runs * len(SELF_SCENARIOS)
    lines = [f"False alarms, same commit both sides ({', '.join(SELF_SCENARIOS)}):",
             f"  after {args.rounds} rounds: {found.gate_suspects} of {args.self_runs} gate "
             f"runs, {found.suspects} of {verdicts} scenario verdicts below the limit"]
    if args.confirm:
        lines.append(f"  after {args.confirm} confirmation rounds: {found.gate_alarms} of "
                     f"{args.self_runs} gate runs "
                     f"({100 * found.gate_alarms / args.self_runs:.0f}%), "
                     f"{found.scenario_alarms} of {verdicts} scenario verdicts")
    if found.medians:
        ratios = found.ratios
        lines.append(f"  median head/base of the first {args.rounds} rounds: "
                     f"{spread_text(found.medians)} (sd {statistics.pstdev(found.medians):.3f}); "
                     f"single rounds: {spread_text(ratios)}, 5th..95th percentile "
                     f"{percentile(ratios, 0.05):.2f}..{percentile(ratios, 0.95):.2f}")
    lines += [f"Detection on `{SLOW_SCENARIO}`, {args.slow_runs} gate runs per factor:",
              f"  work/token  expected head/base  final medians  below after {args.rounds}  "
              "flagged in the end"]
    lines += [f"  x{factor:<10g} {1 / factor:<19.3f} {spread_text(d.medians):<14} "
              f"{d.suspected}/{args.slow_runs:<13} {d.flagged}/{args.slow_runs}"
              for factor, d in detection.items()]
    return lines


def verdict_line(factors: list[float], detection: dict[float, Detection], runs: int) -> str:
    caught = smallest_caught({f: detection[f] for f in factors}, runs)
    if caught is None:
        return "No slowdown factor was flagged in every run"
    return (f"Smallest slowdown flagged in every run (and every larger one): x{caught:g} "
            f"work per token (expected head/base {1 / caught:.3f})")


if __name__ == "__main__":
    raise SystemExit(main())
