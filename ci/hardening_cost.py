"""What the container's hardening costs a run: ``python ci/hardening_cost.py``.

(With the kit installed, or ``PYTHONPATH=.`` from the checkout; a Docker engine and a base
image, e.g. ``STRESS_BASE_IMAGE=stress-kit-base:trixie``.)

Runs one short scenario (default: ``short`` at ``--scale 0.5``, no profiles, no evidence
reruns) in the kit's image through the kit's own driver (stress.container.driver), once
hardened, as every run is (the image's non-root user with the results folder handed over
and back, no capabilities, no-new-privileges, a read-only root with a tmpfs /tmp, a pids
limit, log rotation), and once without that hardening (the host's user, Docker's default
capabilities and a writable root; the same mounts, memory limit and no network). The two go
in pairs, alternating which goes first, so drift on a shared machine hits both alike; it
prints each pair and the median ratio hardened/plain, with its spread (lowest and highest
pair), of

- the wall time from the container's creation to its exit (handing the results folder to
  the image's user included; handing it back and removing the container not), and
- the scenario's throughput as the run inside measured it (results.json).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stress.container import driver, engine, image
from stress.stats import median


@dataclass(frozen=True, kw_only=True)
class Timing:
    wall_s: float  # creation to exit
    throughput: float  # tokens/sec, the scenario's own figure


class RunFailedError(RuntimeError):
    """The run inside the container did not pass; its output says why."""


def run_once(client: Any, tag: str, *, hardened: bool, scenario: str, scale: float,
             results_dir: Path) -> Timing:
    config = driver.RunConfig(
        results_dir=results_dir, image=tag, timeout_s=600,
        command=("run", scenario, "--scale", str(scale), "--no-evidence", "--out",
                 driver.RESULTS_MOUNT, "--engine", "host"))
    out = io.StringIO()
    started = time.monotonic()
    with driver.StressContainer(client, config, hardened=hardened) as box:
        code = box.run(out)
        wall_s = time.monotonic() - started
    if code != 0:
        raise RunFailedError(f"{'hardened' if hardened else 'plain'} run exited {code}:\n"
                             f"{out.getvalue()[-3000:]}")
    data = json.loads((results_dir / "results.json").read_text(encoding="utf-8"))
    (entry,) = data["scenarios"]
    return Timing(wall_s=wall_s, throughput=float(entry["metrics"]["throughput"]))


def spread(values: list[float]) -> str:
    return f"{median(values):.3f} (lowest {min(values):.3f}, highest {max(values):.3f})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python ci/hardening_cost.py",
                                     description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--pairs", type=int, default=7)
    parser.add_argument("--scenario", default="short")
    parser.add_argument("--scale", type=float, default=0.5)
    parser.add_argument("--base", default=os.environ.get("STRESS_BASE_IMAGE") or None,
                        help="base image (default: $STRESS_BASE_IMAGE or the Dockerfile's pin)")
    parser.add_argument("--image", default=None, metavar="TAG",
                        help="run this image instead of building the kit's")
    args = parser.parse_args(argv)
    client = engine.connect()
    tag = args.image or image.build(client, base=args.base).tag
    print(f"{args.scenario} at --scale {args.scale:g} in {tag}, {args.pairs} pairs, "
          f"alternating which goes first; Python {sys.version.split()[0]}, "
          f"{os.cpu_count()} CPUs")
    print(f"{'pair':>4} {'first':>8} {'hardened s':>10} {'plain s':>8} {'x wall':>7} "
          f"{'hardened tok/s':>15} {'plain tok/s':>12} {'x tput':>7}")
    wall_ratios: list[float] = []
    throughput_ratios: list[float] = []
    with tempfile.TemporaryDirectory(prefix="stress-hardening-") as tmp:
        for pair in range(args.pairs):
            order = (True, False) if pair % 2 == 0 else (False, True)
            timings: dict[bool, Timing] = {}
            for hardened in order:
                results_dir = Path(tmp) / f"{pair}-{'hardened' if hardened else 'plain'}"
                try:
                    timings[hardened] = run_once(client, tag, hardened=hardened,
                                                 scenario=args.scenario, scale=args.scale,
                                                 results_dir=results_dir)
                except RunFailedError as exc:
                    print(f"error: {exc}", file=sys.stderr)
                    return 2
                shutil.rmtree(results_dir, ignore_errors=True)
            hard, plain = timings[True], timings[False]
            wall_ratios.append(hard.wall_s / plain.wall_s)
            throughput_ratios.append(hard.throughput / max(plain.throughput, 1e-9))
            print(f"{pair + 1:>4} {'hardened' if order[0] else 'plain':>8} "
                  f"{hard.wall_s:>10.2f} {plain.wall_s:>8.2f} {wall_ratios[-1]:>7.3f} "
                  f"{hard.throughput:>15,.0f} {plain.throughput:>12,.0f} "
                  f"{throughput_ratios[-1]:>7.3f}", flush=True)
    print(f"hardened/plain wall time, creation to exit: median {spread(wall_ratios)}")
    print(f"hardened/plain throughput:                  median {spread(throughput_ratios)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
