"""The ab gate's instruction measure on this machine: false alarms, detection, spread, time.

    python ci/ab_instructions.py [--self-runs 10] [--slow-runs 3] [--slowdowns 2,5,10]
                                 [--max-growth 3] [--scale 0.05] [--pr-gate]

The sibling of ci/ab_false_alarm.py (wall time) for ``stress-kit ab --measure instructions``.
A temporary git repository holds a target that is the reference pipeline
(stress.pipeline:reference) with STEPS/100 steps of arithmetic added per token received,
committed with STEPS 0 and once per slowdown. The steps a slowdown of s% needs are calibrated
from two instruction counts (STEPS 0 and 20) taken with ``run --measure instructions``; the
expected head/base is printed beside what the gate measured. The gate (this checkout's kit)
then compares STEPS 0 with itself --self-runs times on ``short`` and with each slowed commit
--slow-runs times. ``--pr-gate`` also times one gate of the pull-request job's scenarios
(short medium concurrent errors) with ``--measure auto --scale 4``, as the workflow runs it.
Prints figures; exit code 0 unless a gate run gave no figure.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))  # this checkout's kit, as the gate runs it

from stress.process import child_environment  # noqa: E402  (after the checkout is on the path)
from stress.results import parse_results_document  # noqa: E402

TARGET = "bench_target:pipeline"
SCENARIO = "short"
PR_SCENARIOS = ("short", "medium", "concurrent", "errors")
# A fifth of a step a token: the regime the slowdowns are in. (Calibrated at ten steps a
# token, the cost a step came out a third higher than at a few hundredths: the built
# slowdowns of 2/5/10% measured 1.3/3.3/7.7%.)
CALIBRATION_STEPS = 20

TARGET_SOURCE = '''"""The reference pipeline with STEPS/100 steps of work added per token."""

from stress.pipeline import reference

STEPS = {steps!r}


def burn(steps):
    total = 0
    for i in range(steps):
        total += i * i
    return total


class _Stats:
    """The run's Stats, with the added work done as tokens are counted."""

    def __init__(self, stats):
        object.__setattr__(self, "_stats", stats)
        object.__setattr__(self, "_carry", 0)

    def __getattr__(self, name):
        return getattr(self._stats, name)

    def _work(self, tokens):
        # Tokens arrive in batches: the remainder carries over, so the work a token is
        # STEPS/100 steps exactly on average.
        steps, carry = divmod(self._carry + tokens * STEPS, 100)
        object.__setattr__(self, "_carry", carry)
        burn(steps)

    def receive(self, conversation, text):
        # The pipeline hands what it received to the harness, which counts the tokens.
        before = self._stats.tokens_received
        self._stats.receive(conversation, text)
        self._work(self._stats.tokens_received - before)

    def __setattr__(self, name, value):
        if name == "tokens_received":  # a target that counts its tokens itself
            self._work(value - self._stats.tokens_received)
        setattr(self._stats, name, value)


class Pipeline:
    def __init__(self):
        self.inner = reference()

    async def run(self, params, stats, quit):
        await self.inner.run(params, _Stats(stats), quit)


def pipeline():
    return Pipeline()
'''


def kit_env(extra_path: Path | None = None) -> dict[str, str]:
    path = os.pathsep.join(str(p) for p in (extra_path, REPO) if p is not None)
    return child_environment(quiet_ci=True, extra={"PYTHONPATH": path})


def git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-c", "user.name=Benchmark", "-c", "user.email=bench@example.com",
                    *args], cwd=repo, check=True, capture_output=True)


def commit(repo: Path, steps: int) -> str:
    (repo / "bench_target.py").write_text(TARGET_SOURCE.format(steps=steps), encoding="utf-8")
    git(repo, "add", "bench_target.py")
    git(repo, "commit", "-q", "--allow-empty", "-m", f"{steps} hundredths of a step a token")
    tag = f"steps{steps}"
    git(repo, "tag", "-f", tag)
    return tag


def count(repo: Path, root: Path, steps: int) -> float:
    """Instructions per token of the target with ``steps``, by `run --measure instructions`."""
    commit(repo, steps)
    out = root / f"count-{steps}"
    subprocess.run([sys.executable, "-m", "stress", "run", SCENARIO, "--scale", "0.01",
                    "--target", TARGET, "--no-evidence", "--measure", "instructions",
                    "--out", str(out)], cwd=root, env=kit_env(repo), check=True,
                   capture_output=True)
    (result,) = parse_results_document(json.loads((out / "results.json").read_text(
        encoding="utf-8")))
    assert result.metrics.instructions_per_token is not None
    return result.metrics.instructions_per_token


def gate(repo: Path, out: Path, refs: tuple[str, str], scenarios: tuple[str, ...],
         *extra: str, target: str = TARGET) -> tuple[dict[str, Any], float]:
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "stress", "ab", *refs, *scenarios,
                           "--target", target, "--repo", str(repo), "--out", str(out), *extra],
                          cwd=out.parent, env=kit_env(), check=False, capture_output=True,
                          text=True)
    elapsed = time.monotonic() - started
    if not (out / "ab.json").exists():
        raise SystemExit(f"ab gave no ab.json (exit {done.returncode}): {done.stderr[-500:]}")
    document: dict[str, Any] = json.loads((out / "ab.json").read_text(encoding="utf-8"))
    return document, elapsed


def ratio_of(document: dict[str, Any], name: str = SCENARIO) -> tuple[float | None, str]:
    scenario = next(s for s in document["scenarios"] if s["name"] == name)
    return scenario["median_ratio"], scenario["verdict"]


def self_comparisons(repo: Path, root: Path, base_tag: str, *, args: argparse.Namespace,
                     common: tuple[str, ...], seconds: list[float]) -> tuple[list[float], int]:
    ratios: list[float] = []
    alarms = 0
    for i in range(1, args.self_runs + 1):
        document, elapsed = gate(repo, root / f"self{i}", (base_tag, base_tag), (SCENARIO,),
                                 *common)
        ratio, verdict = ratio_of(document)
        seconds.append(elapsed)
        if ratio is None:
            raise SystemExit(f"self {i}: no figure ({verdict})")
        ratios.append(ratio)
        alarms += verdict == "regression"
        print(f"self {i}/{args.self_runs}: head/base {ratio:.5f} {verdict} [{elapsed:.0f}s]",
              flush=True)
    return ratios, alarms


def detections(repo: Path, root: Path, base_tag: str, *, tags: dict[float, str],
               plan: dict[float, int], calibration: tuple[float, float],
               args: argparse.Namespace, common: tuple[str, ...], seconds: list[float]
               ) -> dict[float, tuple[float, list[float], int]]:
    base_count, per_step = calibration
    detected: dict[float, tuple[float, list[float], int]] = {}
    for slowdown, tag in tags.items():
        expected = (base_count + plan[slowdown] * per_step) / base_count
        found: list[float] = []
        flagged = 0
        for i in range(1, args.slow_runs + 1):
            document, elapsed = gate(repo, root / f"slow{slowdown:g}-{i}", (base_tag, tag),
                                     (SCENARIO,), *common)
            ratio, verdict = ratio_of(document)
            seconds.append(elapsed)
            if ratio is None:
                raise SystemExit(f"+{slowdown:g}% {i}: no figure ({verdict})")
            found.append(ratio)
            flagged += verdict == "regression"
            print(f"+{slowdown:g}% {i}/{args.slow_runs}: head/base {ratio:.5f} (expected "
                  f"{expected:.5f}) {verdict} [{elapsed:.0f}s]", flush=True)
        detected[slowdown] = expected, found, flagged
    return detected


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--self-runs", type=int, default=10)
    parser.add_argument("--slow-runs", type=int, default=3)
    parser.add_argument("--slowdowns", default="2,5,10")
    parser.add_argument("--max-growth", type=float, default=3.0)
    parser.add_argument("--scale", type=float, default=0.05,
                        help="the wall-clock run beside each count (it does not judge)")
    parser.add_argument("--pr-gate", action="store_true")
    args = parser.parse_args()
    slowdowns = [float(s) for s in args.slowdowns.split(",") if s]
    common = ("--measure", "instructions", "--rounds", "1", "--no-explain",
              "--max-growth", str(args.max_growth), "--scale", str(args.scale))
    started = time.monotonic()
    print(f"{os.cpu_count()} CPUs; load average "
          + " ".join(f"{x:.2f}" for x in os.getloadavg()), flush=True)
    with tempfile.TemporaryDirectory(prefix="ab-instructions-") as tmp:
        root = Path(tmp)
        repo = root / "repo"
        repo.mkdir()
        git(repo, "init", "-q")
        base_count = count(repo, root, 0)
        per_step = (count(repo, root, CALIBRATION_STEPS) - base_count) / CALIBRATION_STEPS
        print(f"calibration: {base_count:,.1f} instructions a token at STEPS 0, "
              f"{per_step:,.2f} per hundredth of a step", flush=True)
        plan = {s: max(1, round(s / 100 * base_count / per_step)) for s in slowdowns}
        base_tag = commit(repo, 0)
        tags = {s: commit(repo, steps) for s, steps in plan.items()}
        git(repo, "checkout", "-q", base_tag)
        seconds: list[float] = []
        pr_seconds = None  # first: it is the figure the workflow depends on
        if args.pr_gate:
            document, pr_seconds = gate(repo, root / "pr", (base_tag, base_tag), PR_SCENARIOS,
                                        "--measure", "auto", "--scale", "4", "--rounds", "5",
                                        target="stress.pipeline:reference")
            print("pull-request gate (reference pipeline, auto, --scale 4): " + ", ".join(
                f"{s['name']} {s['measure']} {s['median_ratio']}" for s in
                document["scenarios"]) + f" [{pr_seconds:.0f}s]", flush=True)
        self_ratios, alarms = self_comparisons(repo, root, base_tag, args=args, common=common,
                                               seconds=seconds)
        detected = detections(repo, root, base_tag, tags=tags, plan=plan,
                              calibration=(base_count, per_step), args=args, common=common,
                              seconds=seconds)
    if self_ratios:
        print(f"\nFalse alarms, same code both sides: {alarms} of {args.self_runs} at a "
              f"{args.max_growth:g}% limit (head/base > {1 + args.max_growth / 100:.2f})")
        print(f"  head/base: {min(self_ratios):.5f}..{max(self_ratios):.5f} "
              f"(sd {statistics.pstdev(self_ratios):.6f})")
    print(f"Detection, {args.slow_runs} gates per slowdown:")
    print("  slowdown  expected head/base  measured head/base   flagged")
    for slowdown, (expected, found, flagged) in detected.items():
        print(f"  +{slowdown:<7g} {expected:<19.4f} {min(found):.4f}..{max(found):.4f}"
              f"      {flagged}/{args.slow_runs}")
    print(f"One gate of `short` (two revisions prepared, one round): median "
          f"{statistics.median(seconds):.0f}s ({min(seconds):.0f}..{max(seconds):.0f})")
    if pr_seconds is not None:
        print(f"The pull-request job's gate (short medium concurrent errors, --measure auto): "
              f"{pr_seconds:.0f}s")
    print(f"Took {time.monotonic() - started:.0f}s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
