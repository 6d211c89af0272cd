"""Running the gate: rounds in alternating order, confirmation rounds, signals, the report.

Each measurement is one ``python -m stress run NAME`` in the revision's environment; its
results.json gives the figure. Rounds alternate the order (base-head, head-base, ...) so a
slow drift of the machine weighs on both sides alike.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import FrameType

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


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the run's process group (it stops its scenario and reports), then SIGKILL."""
    stop_in_stages(proc, terminate_wait_s=STOP_GRACE_S, group=True)


def _last_line(path: Path) -> str:
    lines = [line.strip() for line in path.read_text(encoding="utf-8", errors="replace")
             .splitlines() if line.strip()]
    return lines[-1] if lines else "no output"


def measure(revision: Revision, name: str, number: int, options: AbOptions,
            out_dir: Path, *, kind: str = "wall") -> Measurement:
    """One `python -m stress run NAME` in the revision's environment; its throughput (and
    its instructions per token, for ``kind`` instructions or callgrind)."""
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
    scale = options.scale if kind == "wall" else min(options.scale, COUNTED_WALL_SCALE)
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
        try:
            returncode = proc.wait(timeout=RUN_BACKSTOP_S)
        except subprocess.TimeoutExpired:
            _stop(proc)
            return Measurement(problem=f"still running after {RUN_BACKSTOP_S:.0f}s; stopped",
                               log=relative_log)
        finally:
            _stop(proc)  # on an interrupt of the gate itself
    return read_measurement(run_dir / "results.json", name, returncode, log_path, relative_log,
                            counted=kind != "wall")


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


def _play(revisions: Mapping[Side, Revision], names: Sequence[str], numbers: range, *,
          rounds: dict[str, list[Round]], options: AbOptions, out_dir: Path,
          title: str, measures: Mapping[str, ScenarioMeasure] | None = None) -> None:
    """Rounds `numbers` of each scenario in `names`, appended to `rounds` as they finish.
    An instruction-measured scenario gets one round: its count does not vary."""
    def done_with(name: str) -> bool:
        # A run without a figure ends the scenario (it is reported); a count needs one round.
        return any(r.ratio is None for r in rounds[name]) or (
            (measures or {}).get(name) == "instructions" and bool(rounds[name]))

    for number in numbers:
        order = round_order(number)
        if all(done_with(name) for name in names):
            break
        with group(f"ab {title} {number}/{numbers.stop - 1}: {order[0]} first"):
            for name in names:
                kind = (measures or {}).get(name, "wall")
                if done_with(name):
                    continue
                figures: dict[Side, Measurement] = {}
                for side in order:
                    figures[side] = measure(revisions[side], name, number, options, out_dir,
                                            kind=kind)
                    if figures[side].throughput is None:
                        break
                missing = Measurement(problem="not run (the other side failed first)")
                done = Round(number=number, base=figures.get("base", missing),
                             head=figures.get("head", missing), measure=kind)
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
    try:
        _play(revisions, names, range(1, options.rounds + 1), rounds=rounds, options=options,
              out_dir=out_dir, title="round", measures=measures)
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


def explain_regressions(revisions: Mapping[Side, Revision], comparisons: list[ScenarioRounds],
                        options: AbOptions, out_dir: Path) -> list[ScenarioRounds]:
    """Each instruction regression with the table of the functions that grew: base and head
    once more under callgrind (Python names on 3.12+, C names otherwise)."""
    explained = []
    for c in comparisons:
        regressed = c.verdict(options.min_ratio, options.max_instruction_ratio) == "regression"
        if c.measure != "instructions" or not regressed:
            explained.append(c)
            continue
        number = len(c.rounds) + 1
        with group(f"ab: {c.name} regressed; callgrind names the functions that grew"):
            dirs: dict[Side, Path] = {}
            problems = []
            for side in ("base", "head"):
                found = measure(revisions[side], c.name, number, options, out_dir,
                                kind="callgrind")
                dirs[side] = out_dir / "runs" / c.name / f"r{number:02d}-{side}-callgrind"
                if found.problem is not None:
                    problems.append(f"{side}: {found.problem} (log: {found.log})")
            try:
                if problems:
                    raise RevisionError("; ".join(problems))
                table, notes = growth_from(dirs, c.name)
            except StressError as exc:
                table, notes = explain_failed(exc)
        explained.append(dataclasses.replace(c, growth_table=table or None, growth_notes=notes))
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
