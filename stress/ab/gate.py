"""Running the gate: rounds in alternating order, confirmation rounds, signals, the report.

Each measurement is one ``python -m stress run NAME`` in the revision's environment; its
results.json gives the figure. Instruction counts come first, several at once (``--jobs``,
one per CPU by default): a count does not depend on what else runs. The wall-clock rounds
follow, one run at a time, alternating the order (base-head, head-base, ...) so a slow drift
of the machine weighs on both sides alike. A regression is then explained: callgrind's table
of the functions that grew (instruction regressions) and CPU flamegraphs of both sides.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from types import FrameType

from stress.ab.flamegraphs import flamegraph_pair
from stress.ab.instructions import explain_failed, growth_from, run_flags, scenario_measures
from stress.ab.model import (
    AbOptions,
    AbReport,
    Measurement,
    Revision,
    Round,
    ScenarioMeasure,
    ScenarioRounds,
    Side,
    measured_text,
    ratio_text,
    round_order,
)
from stress.ab.render import write_outputs
from stress.ab.revisions import (
    Workspace,
    list_scenarios,
    prepare_revision,
    repo_root,
    resolve_commit,
    workspace,
)
from stress.console import group
from stress.errors import ConfigError, RevisionError, StressError
from stress.process import stop_in_stages
from stress.results import UNFINISHED_STATUSES, parse_results_document

log = logging.getLogger("stress.ab")

RUN_BACKSTOP_S = 3600.0  # the runner's own per-scenario deadlines catch hangs long before this
STOP_GRACE_S = 15.0  # after SIGTERM the run stops its scenario child in stages, then reports
COUNTED_WALL_SCALE = 0.01  # the wall-clock run beside an instruction count: not judged
COUNTED_KINDS = ("instructions", "callgrind")

# The runs in progress, so an interrupt of the gate stops those started from worker threads.
_running: set[subprocess.Popen[bytes]] = set()
_running_lock = threading.Lock()


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the run's process group (it stops its scenario and reports), then SIGKILL."""
    stop_in_stages(proc, terminate_wait_s=STOP_GRACE_S, group=True)


def _stop_running() -> None:
    with _running_lock:
        running = list(_running)
    for proc in running:
        _stop(proc)


def count_jobs(options: AbOptions) -> int:
    """How many counted runs at once: --jobs, else one per CPU this process may use."""
    if options.jobs:
        return options.jobs
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def at_once(tasks: Sequence[Callable[[], Measurement]], jobs: int
            ) -> Iterator[Measurement]:
    """Each task's measurement, in order, up to ``jobs`` of them running at once.

    Only for instruction counts: a count does not depend on what else the machine runs, a
    wall-clock figure does (those rounds stay one at a time). An interrupt stops every run
    in progress before it propagates.
    """
    if jobs <= 1 or len(tasks) <= 1:
        yield from (task() for task in tasks)
        return
    pool = ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="ab-count")
    futures: list[Future[Measurement]] = [pool.submit(task) for task in tasks]
    try:
        for future in futures:
            yield future.result()
    except BaseException:
        for future in futures:
            future.cancel()
        _stop_running()
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _last_line(path: Path) -> str:
    lines = [line.strip() for line in path.read_text(encoding="utf-8", errors="replace")
             .splitlines() if line.strip()]
    return lines[-1] if lines else "no output"


def measure(revision: Revision, name: str, number: int, options: AbOptions,
            out_dir: Path, *, kind: str = "wall") -> Measurement:
    """One `python -m stress run NAME` in the revision's environment; its throughput (and
    its instructions per token, for ``kind`` instructions or callgrind)."""
    counted = kind in COUNTED_KINDS
    suffix = "" if kind == "wall" else f"-{kind}"
    run_dir = out_dir / "runs" / name / f"r{number:02d}-{revision.side}{suffix}"
    log_path = run_dir.with_name(run_dir.name + ".log")
    relative_log = str(log_path.relative_to(out_dir))
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "results.json").unlink(missing_ok=True)
    argv = [sys.executable, "-m", "stress", "run", name, "--out", str(run_dir),
            "--no-evidence", "--target", revision.target]
    # A counted run's verdict is its count: its wall-clock run (which `run` makes first) is
    # kept short, so the gate's time goes to the counts.
    scale = min(options.scale, COUNTED_WALL_SCALE) if counted else options.scale
    if scale != 1.0:
        argv += ["--scale", repr(scale)]
    if options.scenarios_file is not None:
        argv += ["--scenarios", str(options.scenarios_file)]
    argv += run_flags(kind, options)
    with log_path.open("w", encoding="utf-8") as out:
        out.write(f"# {revision.side} {revision.ref} ({revision.sha[:12]}), round {number}\n"
                  f"$ {' '.join(argv)}\n")
        out.flush()
        # A session of its own: the gate decides when a run stops, in stages.
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, cwd=revision.cwd,
                                env=dict(revision.env), start_new_session=True)
        with _running_lock:
            _running.add(proc)
        try:
            returncode = proc.wait(timeout=RUN_BACKSTOP_S)
        except subprocess.TimeoutExpired:
            _stop(proc)
            return Measurement(problem=f"still running after {RUN_BACKSTOP_S:.0f}s; stopped",
                               log=relative_log)
        finally:
            _stop(proc)  # on an interrupt of the gate itself
            with _running_lock:
                _running.discard(proc)
    return read_measurement(run_dir / "results.json", name, returncode, log_path, relative_log,
                            counted=counted)


def read_measurement(path: Path, name: str, returncode: int, log_path: Path,
                     relative_log: str, *, counted: bool = False) -> Measurement:
    """The scenario's throughput from a run's results.json, or why there is none."""
    if not path.is_file():
        return Measurement(problem=f"`python -m stress run` exited {returncode} without "
                                   f"results.json: {_last_line(log_path)}", log=relative_log)
    try:
        results = parse_results_document(json.loads(path.read_text(encoding="utf-8")))
    except (ValueError, KeyError, TypeError) as exc:
        return Measurement(problem=f"unreadable results.json: {exc}", log=relative_log)
    result = next((r for r in results if r.scenario.name == name), None)
    if result is None:
        return Measurement(problem=f"results.json has no scenario {name!r}", log=relative_log)
    if result.status in UNFINISHED_STATUSES:
        detail = result.failures[0].message if result.failures else "no detail"
        return Measurement(problem=f"{result.status}: {detail}", log=relative_log)
    if result.metrics.throughput <= 0:
        return Measurement(problem="measured 0 tokens/sec", log=relative_log)
    per_token = result.metrics.instructions_per_token
    if counted and per_token is None:
        why = next((n for n in result.notes if n.startswith("No instruction count")),
                   "the run reported no instructions per token")
        return Measurement(problem=why, log=relative_log)
    return Measurement(throughput=result.metrics.throughput, instructions_per_token=per_token,
                       log=relative_log)


def _count(revisions: Mapping[Side, Revision], names: Sequence[str], *,
           rounds: dict[str, list[Round]], options: AbOptions, out_dir: Path) -> None:
    """The one round of each instruction-measured scenario: base and head of every such
    scenario counted, several at once (a count does not depend on the machine's load)."""
    if not names:
        return
    jobs = count_jobs(options)
    sides: tuple[Side, Side] = ("base", "head")
    tasks = [functools.partial(measure, revisions[side], name, 1, options, out_dir,
                               kind="instructions") for name in names for side in sides]
    with group(f"ab instruction counts: {len(names)} scenario(s), base and head, "
               f"{min(jobs, len(tasks))} at a time"):
        found = at_once(tasks, jobs)
        for name in names:
            done = Round(number=1, base=next(found), head=next(found), measure="instructions")
            rounds[name].append(done)
            print(_round_line(name, done), flush=True)


def _play(revisions: Mapping[Side, Revision], names: Sequence[str], numbers: range, *,
          rounds: dict[str, list[Round]], options: AbOptions, out_dir: Path,
          title: str) -> None:
    """Wall-clock rounds `numbers` of each scenario in `names`, appended to `rounds` as they
    finish, one run at a time: a run beside it would take its CPU."""
    def done_with(name: str) -> bool:
        return any(r.ratio is None for r in rounds[name])  # a run without a figure ends it

    for number in numbers:
        order = round_order(number)
        if all(done_with(name) for name in names):
            break
        with group(f"ab {title} {number}/{numbers.stop - 1}: {order[0]} first"):
            for name in names:
                if done_with(name):
                    continue
                figures: dict[Side, Measurement] = {}
                for side in order:
                    figures[side] = measure(revisions[side], name, number, options, out_dir)
                    if figures[side].throughput is None:
                        break
                missing = Measurement(problem="not run (the other side failed first)")
                done = Round(number=number, base=figures.get("base", missing),
                             head=figures.get("head", missing))
                rounds[name].append(done)
                print(_round_line(name, done), flush=True)


def _suspects(rounds: Mapping[str, list[Round]], min_ratio: float) -> dict[str, float]:
    """The wall-measured scenarios whose median so far is below the limit, with that median."""
    found: dict[str, float] = {}
    for name, measured in rounds.items():
        if any(r.measure == "instructions" for r in measured):
            continue  # a count needs no confirmation: the next one would be the same
        first = ScenarioRounds(name=name, rounds=tuple(measured))
        ratios = first.ratio_spread()
        if first.verdict(min_ratio) == "regression" and ratios is not None:
            found[name] = ratios.median
    return found


def measure_rounds(revisions: Mapping[Side, Revision], names: Sequence[str],
                   options: AbOptions, out_dir: Path,
                   measures: Mapping[str, ScenarioMeasure] | None = None
                   ) -> tuple[list[ScenarioRounds], bool]:
    """Every round of every scenario, then confirmation rounds for those below the limit.
    Returns the comparisons and whether an interrupt (Ctrl-C, a cancelled job) cut them
    short; what was measured is kept either way."""
    rounds: dict[str, list[Round]] = {name: [] for name in names}
    suspects: dict[str, float] = {}
    interrupted = False
    counted = [n for n in names if (measures or {}).get(n) == "instructions"]
    timed = [n for n in names if n not in counted]
    try:
        # The counts first, all together; then the wall-clock rounds, alone on the machine.
        _count(revisions, counted, rounds=rounds, options=options, out_dir=out_dir)
        _play(revisions, timed, range(1, options.rounds + 1), rounds=rounds, options=options,
              out_dir=out_dir, title="round")
        if options.confirm_rounds:
            suspects = _suspects(rounds, options.min_ratio)
        if suspects:
            print(f"ab: {', '.join(f'{n} {measured_text(m)}' for n, m in suspects.items())} "
                  f"below {ratio_text(options.min_ratio)} after {options.rounds} round(s); "
                  f"{options.confirm_rounds} more to confirm", flush=True)
            last = options.rounds + options.confirm_rounds
            _play(revisions, list(suspects), range(options.rounds + 1, last + 1), rounds=rounds,
                  options=options, out_dir=out_dir, title="confirmation round")
    except KeyboardInterrupt:
        interrupted = True
        print("ab: interrupted; the rounds measured so far are reported", file=sys.stderr)
    return [ScenarioRounds(name=n, rounds=tuple(rounds[n]), suspect_median=suspects.get(n),
                           confirm_after=options.rounds if n in suspects else 0,
                           measure=(measures or {}).get(n, "wall"))
            for n in names], interrupted


def _round_line(name: str, r: Round) -> str:
    def figure(m: Measurement) -> str:
        if r.measure == "instructions" and m.instructions_per_token is not None:
            return f"{m.instructions_per_token:>12,.1f} instr/token"
        return f"{m.throughput:>12,.0f} tokens/s" if m.throughput is not None else "      (failed)"

    ratio = f"head/base {measured_text(r.ratio)}" if r.ratio is not None else \
        f"no ratio: {r.head.problem or r.base.problem}"
    return f"  {name:<14} base {figure(r.base)}  head {figure(r.head)}  {ratio}"


@contextmanager
def _sigterm_unwinds() -> Iterator[None]:
    """A cancelled CI job (SIGTERM) unwinds like Ctrl-C: runs stopped, worktrees removed."""
    def handler(_signum: int, _frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def choose_scenarios(revisions: Mapping[Side, Revision], options: AbOptions
                     ) -> tuple[list[str], list[ScenarioRounds]]:
    """The scenarios to compare (named, else all of head's) and those base does not have."""
    head_names = list_scenarios(revisions["head"], options.scenarios_file)
    names = list(options.names)
    if head_names is not None:
        unknown = [n for n in names if n not in head_names]
        if unknown:
            raise ConfigError(f"no scenario named {unknown[0]!r} in head "
                              f"{options.head_ref!r}; available: {', '.join(head_names)}")
        names = names or head_names
    elif not names:
        raise RevisionError(f"head {options.head_ref!r} cannot list its scenarios; "
                            "name them on the command line")
    base_names = list_scenarios(revisions["base"], options.scenarios_file)
    if base_names is None:
        return names, []
    new = [ScenarioRounds(name=n, not_compared="not in base (new in head)")
           for n in names if n not in base_names]
    return [n for n in names if n in base_names], new


def _prepare_both(space: Workspace, options: AbOptions, shas: Mapping[Side, str],
                  out_dir: Path) -> dict[Side, Revision]:
    refs: dict[Side, str] = {"base": options.base_ref, "head": options.head_ref}
    targets: dict[Side, str] = {"base": options.base_target, "head": options.head_target}
    revisions: dict[Side, Revision] = {}
    for side in ("base", "head"):
        with group(f"ab: preparing {side} {refs[side]} ({shas[side][:12]})"):
            revisions[side] = prepare_revision(space, side=side, ref=refs[side], sha=shas[side],
                                               target=targets[side], out_dir=out_dir)
    return revisions


def _growth(revisions: Mapping[Side, Revision], c: ScenarioRounds, number: int,
            options: AbOptions, out_dir: Path) -> ScenarioRounds:
    """The table of the functions that grew: base and head once more under callgrind, at
    once (Python names on 3.12+, C names otherwise)."""
    sides: tuple[Side, Side] = ("base", "head")
    with group(f"ab: {c.name} regressed; callgrind names the functions that grew"):
        tasks = [functools.partial(measure, revisions[side], c.name, number, options, out_dir,
                                   kind="callgrind") for side in sides]
        found = dict(zip(sides, at_once(tasks, count_jobs(options)), strict=True))
        dirs = {side: out_dir / "runs" / c.name / f"r{number:02d}-{side}-callgrind"
                for side in sides}
        problems = [f"{side}: {m.problem} (log: {m.log})" for side, m in found.items()
                    if m.problem is not None]
        try:
            if problems:
                raise RevisionError("; ".join(problems))
            table, notes = growth_from(dirs, c.name)
        except StressError as exc:
            table, notes = explain_failed(exc)
    return dataclasses.replace(c, growth_table=table or None, growth_notes=notes)


def explain_regressions(revisions: Mapping[Side, Revision], comparisons: list[ScenarioRounds],
                        options: AbOptions, out_dir: Path) -> list[ScenarioRounds]:
    """Each regression explained: for an instruction regression the table of the functions
    that grew (callgrind), for every regression a CPU flamegraph of base beside head
    (py-spy, one run each)."""
    explained = []
    for compared in comparisons:
        verdict = compared.verdict(options.min_ratio, options.max_instruction_ratio)
        if verdict != "regression":
            explained.append(compared)
            continue
        name, number = compared.name, len(compared.rounds) + 1
        c = _growth(revisions, compared, number, options, out_dir) \
            if compared.measure == "instructions" else compared
        with group(f"ab: {name} regressed; py-spy profiles base and head for flamegraphs"):
            page, note = flamegraph_pair(
                {side: functools.partial(measure, revisions[side], name, number, options,
                                         out_dir, kind="cpu") for side in ("base", "head")},
                name, out_dir, number=number,
                labels={side: revisions[side].label for side in ("base", "head")})
        explained.append(dataclasses.replace(c, flamegraphs=page, flamegraph_note=note))
    return explained


def run_gate(options: AbOptions) -> AbReport:
    repo = repo_root(options.repo)
    shas: dict[Side, str] = {"base": resolve_commit(repo, options.base_ref, "BASE_REF"),
                             "head": resolve_commit(repo, options.head_ref, "HEAD_REF")}
    out_dir = options.out_dir.resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    with _sigterm_unwinds(), workspace(repo, options.keep) as space:
        revisions = _prepare_both(space, options, shas, out_dir)
        names, new = choose_scenarios(revisions, options)
        measures, measure_note = scenario_measures(revisions, names, options)
        comparisons, interrupted = measure_rounds(revisions, names, options, out_dir, measures)
        if not interrupted and options.explain:
            comparisons = explain_regressions(revisions, comparisons, options, out_dir)
    report = AbReport(options=options, revisions=revisions,
                      comparisons=(*comparisons, *new), interrupted=interrupted,
                      notes=(measure_note,) if measure_note else ())
    log.info("ab gate took %.0fs", time.monotonic() - started)
    write_outputs(report, out_dir)
    return report
