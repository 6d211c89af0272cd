"""What the runner's sampling costs the run it measures, on this machine.

    python ci/sampling_overhead.py [--rounds 11] [--seconds 4] [--interval 0.1]
                                   [--target MODULE:ATTR] [--messages N]

The scenario child samples its RSS and counters from a thread every ``--sample-interval``
seconds (stress.child.Sampler), and the runner reads each sample as it arrives. Sampling
cannot be switched off: an interval far longer than the run (OFF_INTERVAL_S) leaves only the
sample written when the measured run starts, none while tokens flow, which is "off" for this
purpose. ``--interval`` costs any other interval the same way (e.g. 0.005).

One unpaced scenario (10-character tokens, sized so that a run lasts about --seconds) runs
through ``python -m stress run``, the way a user runs it, with sampling on and off in turn,
--rounds times each; which goes first alternates, so a drift in the machine's load falls on
both. Each round gives the throughput ratio on/off, and their median gives the cost.

The issue's bound: sampling must cost under 2% of throughput. On a busy machine single rounds
spread far wider than 2%, so the verdict comes with the median's 95% confidence interval
(distribution-free, from order statistics): "holds" when the whole interval is under the
bound, "does NOT hold" when the whole interval is at or above it, "not resolved" otherwise.
Exit code 0, 1 and 3 respectively; 2 when a run failed.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
SCENARIO = "overhead"
DEFAULT_TARGET = "stress.pipeline:reference"
NORMAL_INTERVAL_S = 0.1  # the runner's default (--sample-interval)
OFF_INTERVAL_S = 3600.0  # no periodic sample falls inside a run of minutes
PROBE_MESSAGES = 500_000
BOUND_PCT = 2.0
CONFIDENCE = 0.95

EXIT_HOLDS, EXIT_EXCEEDED, EXIT_RUN_FAILED, EXIT_NOT_RESOLVED = 0, 1, 2, 3


@dataclass(frozen=True, kw_only=True)
class Measured:
    throughput: float  # tokens/s of the measured run
    duration_s: float
    samples: int  # samples taken during the measured run (exact below 2,000: the runner thins)


@dataclass(frozen=True, kw_only=True)
class Round:
    on: Measured
    off: Measured

    @property
    def ratio(self) -> float:
        return self.on.throughput / self.off.throughput


class RunFailedError(Exception):
    """A run gave no throughput: the script cannot give a figure."""


def kit_env() -> dict[str, str]:
    """This checkout's kit; no CI variables, so the runs do not write to a job page."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("GITHUB_ACTIONS", "GITHUB_STEP_SUMMARY", "PYTHONPATH")}
    env["PYTHONPATH"] = str(REPO)
    return env


def write_scenarios(path: Path, messages: int) -> None:
    # No thresholds: every run passes, and its throughput is the only figure used.
    path.write_text(f"scenarios:\n  {SCENARIO}:\n    title: Sampling Overhead\n"
                    f"    messages: {messages}\n    timeout_s: 600\n", encoding="utf-8")


def run_once(work: Path, label: str, *, interval_s: float, target: str) -> Measured:
    out = work / label
    done = subprocess.run(
        [sys.executable, "-m", "stress", "run", SCENARIO, "--scenarios",
         str(work / "scenarios.yaml"), "--target", target, "--no-evidence",
         "--sample-interval", repr(interval_s), "--out", str(out)],
        cwd=work, env=kit_env(), capture_output=True, text=True, check=False)
    try:
        document = json.loads((out / "results.json").read_text(encoding="utf-8"))
        (result,) = document["scenarios"]
    except (OSError, ValueError) as exc:
        raise RunFailedError(f"{label}: no results ({exc}); the run said:\n"
                             f"{done.stdout}{done.stderr}") from None
    if result["status"] != "passed":
        raise RunFailedError(f"{label}: the scenario ended as {result['status']}: "
                             + "; ".join(f["message"] for f in result["failures"]))
    metrics: dict[str, Any] = result["metrics"]
    return Measured(throughput=float(metrics["throughput"]),
                    duration_s=float(metrics["duration_s"]), samples=len(result["samples"]))


def calibrate(work: Path, seconds: float, target: str) -> int:
    """The message count at which one run lasts about ``seconds``.

    Throughput falls as a run grows (the transcript's memory), so a second probe at the
    first estimate corrects it.
    """
    messages = PROBE_MESSAGES
    for probe_number in (1, 2):
        write_scenarios(work / "scenarios.yaml", messages)
        probe = run_once(work, f"calibration-{probe_number}", interval_s=NORMAL_INTERVAL_S,
                         target=target)
        messages = max(1, round(seconds * probe.throughput))
        print(f"calibration {probe_number}: {probe.throughput:,.0f} tokens/s -> "
              f"{messages:,} messages per run (about {seconds:g} s)", flush=True)
    return messages


def describe(measured: Measured) -> str:
    return (f"{measured.throughput:,.0f} tokens/s ({measured.duration_s:.2f} s, "
            f"{measured.samples} samples)")


def measure(work: Path, *, rounds: int, interval_s: float, target: str) -> list[Round]:
    measured = []
    for number in range(1, rounds + 1):
        kinds = [("on", interval_s), ("off", OFF_INTERVAL_S)]
        if number % 2 == 0:
            kinds.reverse()
        runs = {kind: run_once(work, f"round-{number}-{kind}", interval_s=interval,
                               target=target)
                for kind, interval in kinds}
        this = Round(on=runs["on"], off=runs["off"])
        print(f"round {number}/{rounds}: sampling on {describe(this.on)}, "
              f"off {describe(this.off)}; on/off {this.ratio:.3f}", flush=True)
        measured.append(this)
    return measured


def median_interval(values: list[float]) -> tuple[float, float, float] | None:
    """The widest order statistics (x_k, x_n+1-k) that hold the median with CONFIDENCE.

    Distribution-free: the median lies below x_k with probability P(Binomial(n, 1/2) < k).
    Returns (low, high, actual confidence), or None with fewer than 6 values.
    """
    ordered = sorted(values)
    n = len(ordered)
    best = None
    for k in range(1, n // 2 + 1):
        below = sum(math.comb(n, i) for i in range(k)) / 2 ** n
        coverage = 1 - 2 * below
        if coverage < CONFIDENCE:
            break
        best = (ordered[k - 1], ordered[n - k], coverage)
    return best


def verdict(rounds: list[Round], interval_s: float) -> int:
    """Print the figures and the verdict on the bound; returns the exit code."""
    ratios = [r.ratio for r in rounds]
    median = statistics.median(ratios)
    cost_pct = (1 - median) * 100
    on_rate = statistics.median(r.on.samples / max(r.on.duration_s, 1e-9) for r in rounds)
    durations = [m.duration_s for r in rounds for m in (r.on, r.off)]
    print(f"median on/off throughput ratio over {len(rounds)} round(s): {median:.3f} "
          f"(rounds {min(ratios):.3f}..{max(ratios):.3f}; runs lasted "
          f"{min(durations):.2f}..{max(durations):.2f} s)")
    print(f"sampling every {interval_s:g} s ({on_rate:.1f} samples/s) costs {cost_pct:+.2f}% "
          "of throughput")
    interval = median_interval(ratios)
    bound = f"bound: sampling must cost under {BOUND_PCT:g}% of throughput: "
    if interval is None:
        print(bound + f"not resolved ({len(rounds)} rounds are too few for a "
                      f"{CONFIDENCE:.0%} interval; use --rounds 6 or more)")
        return EXIT_NOT_RESOLVED
    low_ratio, high_ratio, coverage = interval
    cost_low, cost_high = (1 - high_ratio) * 100, (1 - low_ratio) * 100
    print(f"{coverage:.1%} confidence interval of the cost: {cost_low:+.2f}%..{cost_high:+.2f}%")
    if cost_high < BOUND_PCT:
        print(bound + f"holds (at most {cost_high:+.2f}% < {BOUND_PCT:g}%)")
        return EXIT_HOLDS
    if cost_low >= BOUND_PCT:
        print(bound + f"does NOT hold (at least {cost_low:+.2f}% >= {BOUND_PCT:g}%)")
        return EXIT_EXCEEDED
    print(bound + f"not resolved: the interval straddles {BOUND_PCT:g}% (the noise of this "
                  "machine is wider than the bound; more rounds or a quieter machine)")
    return EXIT_NOT_RESOLVED


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=11,
                        help="runs with sampling on, and as many off (default 11)")
    parser.add_argument("--seconds", type=float, default=4.0,
                        help="how long one run should last (default 4, so that a run the "
                             "machine's load slows or speeds by a third still lasts 2 s)")
    parser.add_argument("--interval", type=float, default=NORMAL_INTERVAL_S,
                        help=f"the sampling interval to cost (default {NORMAL_INTERVAL_S:g})")
    parser.add_argument("--target", default=DEFAULT_TARGET, help="the system under test")
    parser.add_argument("--messages", type=int,
                        help="messages per run, instead of calibrating to --seconds")
    args = parser.parse_args(argv)
    if args.rounds < 1:
        parser.error("--rounds: expected a whole number >= 1")
    if args.interval <= 0 or args.seconds <= 0:
        parser.error("--interval and --seconds: expected seconds > 0")
    if args.messages is not None and args.messages < 1:
        parser.error("--messages: expected a whole number >= 1")
    return args


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    interval_s, target = float(args.interval), str(args.target)
    with tempfile.TemporaryDirectory(prefix="stress-sampling-") as tmp:
        work = Path(tmp)
        try:
            messages = args.messages if args.messages is not None else \
                calibrate(work, float(args.seconds), target)
            write_scenarios(work / "scenarios.yaml", messages)
            print(f"scenario: {messages:,} tokens of 10 characters, unpaced, target {target}; "
                  f"sampling on: every {interval_s:g} s, off: every {OFF_INTERVAL_S:g} s "
                  "(only the sample at the run's start)", flush=True)
            rounds = measure(work, rounds=int(args.rounds), interval_s=interval_s,
                             target=target)
        except RunFailedError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_RUN_FAILED
    return verdict(rounds, interval_s)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
