"""Side-by-side regression gate: two revisions measured in turn on one machine, in one job.

Each revision (a git ref) is checked out into a temporary worktree and given an import path of
its own: installed with pip into a folder of its own when it is a Python project, else its
folder itself, first on PYTHONPATH. When the revision holds the kit (a ``stress`` package), its
own copy runs; otherwise the kit running the gate does, through a folder holding only that
``stress`` package. Each measurement is one ``python -m stress run NAME`` in that environment.

Rounds alternate the order (base-head, head-base, ...) so a slow drift of the machine weighs on
both sides alike. Each round gives one ratio, head throughput / base throughput, and a scenario
regresses when the median ratio is below ``1 - max_drop / 100``: figures from different runners
or days never meet. A scenario below the limit after its rounds is measured again, later, for
more rounds and judged on all of them: on a busy machine bad rounds come in clusters, and a
gate that fails unchanged code teaches people to ignore it.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any, Literal

import stress
from stress.console import annotate_error, group
from stress.errors import ConfigError, ExitCode, StressError
from stress.results import parse_results_document
from stress.target import DEFAULT_TARGET

log = logging.getLogger("stress.ab")

AB_VERSION = 1
Side = Literal["base", "head"]
Verdict = Literal["ok", "regression", "failed", "not compared"]

RUN_BACKSTOP_S = 3600.0  # the runner's own per-scenario deadlines catch hangs long before this
STOP_GRACE_S = 15.0  # after SIGTERM the run stops its scenario child in stages, then reports
# Variables that make a run write to the job's page; the gate reports once, for all rounds.
_CI_VARIABLES = ("GITHUB_ACTIONS", "GITHUB_STEP_SUMMARY")


class RevisionError(StressError):
    """A revision could not be prepared or does not run the kit it should."""

    exit_code = ExitCode.CRASHED_OR_HUNG


@dataclass(frozen=True, kw_only=True)
class AbOptions:
    base_ref: str
    head_ref: str
    names: tuple[str, ...] = ()
    rounds: int = 5
    confirm_rounds: int = 5  # more rounds for a scenario below the limit; 0: none
    max_drop_pct: float = 20.0
    scale: float = 1.0
    base_target: str = DEFAULT_TARGET
    head_target: str = DEFAULT_TARGET
    scenarios_file: Path | None = None
    out_dir: Path = Path("stress-ab")
    repo: Path = Path(".")
    keep: bool = False

    @property
    def min_ratio(self) -> float:
        return 1.0 - self.max_drop_pct / 100.0


def ratio_text(value: float) -> str:
    """0.8 -> '0.80', 0.875 -> '0.875': two decimals, more only when they matter."""
    text = f"{value:.4f}".rstrip("0")
    whole, _, decimals = text.partition(".")
    return f"{whole}.{decimals.ljust(2, '0')}"


def measured_text(value: float) -> str:
    """A measured ratio: three decimals, so 0.799 is not shown as the limit 0.80."""
    return f"{value:.3f}"


def rule_text(max_drop_pct: float) -> str:
    """The rule in the ratio's own terms, so nobody has to invert a percentage."""
    return (f"regression when median head/base < {ratio_text(1.0 - max_drop_pct / 100.0)} "
            f"(a drop of more than {max_drop_pct:g}%)")


# --- statistics and verdicts --------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Spread:
    median: float
    low: float
    high: float
    q1: float
    q3: float


def spread(values: Sequence[float]) -> Spread:
    if not values:
        raise ValueError("spread of no values")
    if len(values) == 1:
        (only,) = values
        return Spread(median=only, low=only, high=only, q1=only, q3=only)
    q1, _, q3 = statistics.quantiles(values, n=4, method="inclusive")
    return Spread(median=statistics.median(values), low=min(values), high=max(values),
                  q1=q1, q3=q3)


def round_order(number: int) -> tuple[Side, Side]:
    """ABBA: odd rounds run base first, even rounds head first."""
    return ("base", "head") if number % 2 == 1 else ("head", "base")


@dataclass(frozen=True, kw_only=True)
class Measurement:
    throughput: float | None = None  # tokens/s; None when the run gave no figure
    problem: str | None = None  # why there is no figure
    log: str = ""  # the run's output, relative to the gate's output folder


@dataclass(frozen=True, kw_only=True)
class Round:
    number: int
    base: Measurement
    head: Measurement

    @property
    def order(self) -> tuple[Side, Side]:
        return round_order(self.number)

    @property
    def ratio(self) -> float | None:
        if self.base.throughput is None or self.head.throughput is None:
            return None
        return self.head.throughput / self.base.throughput


@dataclass(frozen=True, kw_only=True)
class Comparison:
    """One scenario's rounds. A run without a figure ends the scenario: it is reported."""

    name: str
    rounds: tuple[Round, ...] = ()
    not_compared: str | None = None  # e.g. "not in base (new in head)"
    # Set when the first rounds' median was below the limit and more rounds followed.
    suspect_median: float | None = None
    confirm_after: int = 0  # the rounds measured before the confirmation rounds

    @property
    def ratios(self) -> list[float]:
        return [r.ratio for r in self.rounds if r.ratio is not None]

    @property
    def problems(self) -> list[str]:
        found = []
        for r in self.rounds:
            for side, m in (("base", r.base), ("head", r.head)):
                if m.problem is not None:
                    found.append(f"{side} round {r.number}: {m.problem} (log: {m.log})")
        return found

    def ratio_spread(self) -> Spread | None:
        return spread(self.ratios) if self.ratios else None

    def side_median(self, side: Side) -> float | None:
        figures = [getattr(r, side).throughput for r in self.rounds if r.ratio is not None]
        return statistics.median(figures) if figures else None

    def verdict(self, min_ratio: float) -> Verdict:
        if self.not_compared is not None:
            return "not compared"
        ratios = self.ratio_spread()
        if self.problems or ratios is None:
            return "failed"
        return "regression" if ratios.median < min_ratio else "ok"


# --- git revisions and their environments -------------------------------------------------


def _git(repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True,
                              timeout=120, check=False)
    except FileNotFoundError as exc:
        raise ConfigError("git is not installed or not on PATH; the ab gate checks out "
                          "revisions with git") from exc


def repo_root(repo: Path) -> Path:
    done = _git(repo, "rev-parse", "--show-toplevel")
    if done.returncode != 0:
        raise ConfigError(f"--repo {repo}: not a git repository; run the gate inside the "
                          "repository or pass --repo DIR")
    return Path(done.stdout.strip())


def resolve_commit(repo: Path, ref: str, what: str) -> str:
    done = _git(repo, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}")
    if done.returncode != 0 or not done.stdout.strip():
        raise ConfigError(f"{what} {ref!r} is not a commit in {repo}: fetch it first, "
                          "e.g. git fetch origin main")
    return done.stdout.strip()


@dataclass(frozen=True, kw_only=True)
class Revision:
    side: Side
    ref: str
    sha: str
    target: str
    tree: Path  # the revision's files
    cwd: Path  # where its runs start: outside the tree, so only PYTHONPATH decides imports
    env: Mapping[str, str]
    stress_file: str  # where `import stress` resolved in that environment
    own_kit: bool  # the revision holds the kit; its own copy runs
    setup: str  # how its code was made importable, in words


@dataclass
class Workspace:
    """A temporary folder with the revisions' worktrees; removed (and unregistered) at the end."""

    repo: Path
    root: Path
    worktrees: list[Path] = field(default_factory=list)

    def add_worktree(self, sha: str, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        done = _git(self.repo, "worktree", "add", "--detach", str(path), sha)
        if done.returncode != 0:
            raise RevisionError(f"git worktree add {sha[:12]} failed: {done.stderr.strip()}")
        self.worktrees.append(path)

    def remove(self) -> None:
        for path in self.worktrees:
            _git(self.repo, "worktree", "remove", "--force", str(path))
        _git(self.repo, "worktree", "prune")
        shutil.rmtree(self.root, ignore_errors=True)


@contextmanager
def workspace(repo: Path, keep: bool) -> Iterator[Workspace]:
    space = Workspace(repo=repo, root=Path(tempfile.mkdtemp(prefix="stress-ab-")))
    try:
        yield space
    finally:
        if keep:
            print(f"kept the revisions in {space.root} (remove with: git -C {repo} worktree "
                  f"remove --force <path>, for each of {', '.join(map(str, space.worktrees))})")
        else:
            space.remove()


def running_kit() -> Path:
    """The folder of the ``stress`` package running this gate."""
    return Path(stress.__file__).resolve().parent


def _has_own_kit(tree: Path) -> bool:
    return any((tree / where / "stress" / "__main__.py").is_file() for where in (".", "src"))


def _child_env(paths: Sequence[Path], sha: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _CI_VARIABLES}
    inherited = [os.environ["PYTHONPATH"]] if os.environ.get("PYTHONPATH") else []
    env["PYTHONPATH"] = os.pathsep.join([*map(str, paths), *inherited])
    env["STRESS_GIT_SHA"] = sha  # results.json names the revision measured
    return env


def _install(tree: Path, site: Path, setup_log: Path) -> bool:
    """pip install the revision, offline and with this environment's build backend."""
    argv = [sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation",
            "--no-index", "--no-input", "--disable-pip-version-check", "--target", str(site),
            str(tree)]
    with setup_log.open("a", encoding="utf-8") as out:
        out.write(f"$ {' '.join(argv)}\n")
        out.flush()
        try:
            done = subprocess.run(argv, stdout=out, stderr=subprocess.STDOUT, cwd=site.parent,
                                  timeout=600, check=False)
        except subprocess.TimeoutExpired:
            out.write("pip did not finish within 600s\n")
            return False
    return done.returncode == 0


def _probe_stress(env: Mapping[str, str], cwd: Path) -> str:
    done = subprocess.run([sys.executable, "-c", "import stress; print(stress.__file__)"],
                          env=dict(env), cwd=cwd, capture_output=True, text=True, timeout=120,
                          check=False)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise RevisionError(f"cannot import the kit in that revision's environment: {last}")
    return done.stdout.strip()


def _within(path: Path, *folders: Path) -> bool:
    return any(path.is_relative_to(folder.resolve()) for folder in folders)


def prepare_revision(space: Workspace, *, side: Side, ref: str, sha: str, target: str,
                     out_dir: Path) -> Revision:
    folder = space.root / side
    tree, site, cwd = folder / "tree", folder / "site", folder / "run"
    space.add_worktree(sha, tree)
    cwd.mkdir(parents=True)
    setup_log = out_dir / f"setup-{side}.log"
    setup_log.write_text(f"# {side}: {ref} = {sha}\n", encoding="utf-8")
    paths: list[Path] = []
    if (tree / "pyproject.toml").is_file():
        if _install(tree, site, setup_log):
            paths.append(site)
            setup = "installed with pip into a folder of its own"
        else:
            # A pure-Python project imports the same from its folder; a compiled one fails
            # in its runs, which are then reported with their logs.
            paths.extend(p for p in (tree / "src",) if p.is_dir())
            setup = (f"pip could not install it offline (see {setup_log.name}); "
                     "imported from its folder")
            log.warning("%s %s: %s", side, ref, setup)
    else:
        setup = "no pyproject.toml: its folder first on PYTHONPATH"
    paths.append(tree)
    own_kit = _has_own_kit(tree)
    if not own_kit:
        shim = space.root / "kit"
        if not shim.exists():
            shim.mkdir()
            (shim / "stress").symlink_to(running_kit(), target_is_directory=True)
        paths.append(shim)
    env = _child_env(paths, sha)
    stress_file = _probe_stress(env, cwd)
    resolved = Path(stress_file).resolve()
    if own_kit and not _within(resolved, site, tree):
        raise RevisionError(f"{side} {ref} holds its own stress package, but its environment "
                            f"imports {stress_file}; unset PYTHONPATH entries that hold the kit")
    if not own_kit and not _within(resolved, running_kit()):
        raise RevisionError(f"{side} {ref}: expected the kit running the gate "
                            f"({running_kit()}), but its environment imports {stress_file}")
    whose = "its own copy" if own_kit else "the kit running the gate"
    log.info("%s %s (%s): stress from %s (%s); %s", side, ref, sha[:12], resolved, whose,
             setup)
    with setup_log.open("a", encoding="utf-8") as out:
        out.write(f"stress imported from {resolved} ({whose})\n")
    return Revision(side=side, ref=ref, sha=sha, target=target, tree=tree, cwd=cwd, env=env,
                    stress_file=str(resolved), own_kit=own_kit, setup=setup)


def list_scenarios(revision: Revision, scenarios_file: Path | None) -> list[str] | None:
    """The revision's scenario names, or None when its kit cannot list them."""
    argv = [sys.executable, "-m", "stress", "list", "--json"]
    if scenarios_file is not None:
        argv += ["--scenarios", str(scenarios_file)]
    done = subprocess.run(argv, env=dict(revision.env), cwd=revision.cwd, capture_output=True,
                          text=True, timeout=120, check=False)
    try:
        names = json.loads(done.stdout) if done.returncode == 0 else None
    except json.JSONDecodeError:
        names = None
    if not isinstance(names, list):
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        log.warning("%s: `python -m stress list --json` failed (%s)", revision.side, last)
        return None
    return [str(name) for name in names]


# --- measuring ----------------------------------------------------------------------------


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """Staged stop of a run: SIGTERM (it stops its scenario and reports), then SIGKILL."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=STOP_GRACE_S)
    except ProcessLookupError:
        return
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def _last_line(path: Path) -> str:
    lines = [line.strip() for line in path.read_text(encoding="utf-8", errors="replace")
             .splitlines() if line.strip()]
    return lines[-1] if lines else "no output"


def measure(revision: Revision, name: str, number: int, options: AbOptions,
            out_dir: Path) -> Measurement:
    """One `python -m stress run NAME` in the revision's environment; its throughput."""
    run_dir = out_dir / "runs" / name / f"r{number:02d}-{revision.side}"
    log_path = run_dir.with_name(run_dir.name + ".log")
    relative_log = str(log_path.relative_to(out_dir))
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "results.json").unlink(missing_ok=True)
    argv = [sys.executable, "-m", "stress", "run", name, "--out", str(run_dir),
            "--no-evidence", "--target", revision.target]
    if options.scale != 1.0:
        argv += ["--scale", repr(options.scale)]
    if options.scenarios_file is not None:
        argv += ["--scenarios", str(options.scenarios_file)]
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
    return _read_throughput(run_dir / "results.json", name, returncode, log_path, relative_log)


def _read_throughput(path: Path, name: str, returncode: int, log_path: Path,
                     relative_log: str) -> Measurement:
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
    if result.status in ("crashed", "timeout", "interrupted"):
        detail = result.failures[0].message if result.failures else "no detail"
        return Measurement(problem=f"{result.status}: {detail}", log=relative_log)
    if result.metrics.throughput <= 0:
        return Measurement(problem="measured 0 tokens/sec", log=relative_log)
    return Measurement(throughput=result.metrics.throughput, log=relative_log)


def _play(revisions: Mapping[Side, Revision], names: Sequence[str], numbers: range, *,
          rounds: dict[str, list[Round]], options: AbOptions, out_dir: Path,
          title: str) -> None:
    """Rounds `numbers` of each scenario in `names`, appended to `rounds` as they finish."""
    for number in numbers:
        order = round_order(number)
        with group(f"ab {title} {number}/{numbers.stop - 1}: {order[0]} first"):
            for name in names:
                if any(r.ratio is None for r in rounds[name]):
                    continue  # a run without a figure ends the scenario; it is reported
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


def measure_rounds(revisions: Mapping[Side, Revision], names: Sequence[str],
                   options: AbOptions, out_dir: Path) -> tuple[list[Comparison], bool]:
    """Every round of every scenario, then confirmation rounds for those below the limit.
    Returns the comparisons and whether an interrupt (Ctrl-C, a cancelled job) cut them
    short; what was measured is kept either way."""
    rounds: dict[str, list[Round]] = {name: [] for name in names}
    suspects: dict[str, float] = {}
    interrupted = False
    try:
        _play(revisions, names, range(1, options.rounds + 1), rounds=rounds, options=options,
              out_dir=out_dir, title="round")
        if options.confirm_rounds:
            for name in names:
                first = Comparison(name=name, rounds=tuple(rounds[name]))
                ratios = first.ratio_spread()
                if first.verdict(options.min_ratio) == "regression" and ratios is not None:
                    suspects[name] = ratios.median
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
    return [Comparison(name=n, rounds=tuple(rounds[n]), suspect_median=suspects.get(n),
                       confirm_after=options.rounds if n in suspects else 0)
            for n in names], interrupted


def _round_line(name: str, r: Round) -> str:
    def figure(m: Measurement) -> str:
        return f"{m.throughput:>12,.0f} tokens/s" if m.throughput is not None else "      (failed)"

    ratio = f"head/base {measured_text(r.ratio)}" if r.ratio is not None else \
        f"no ratio: {r.head.problem or r.base.problem}"
    return f"  {name:<14} base {figure(r.base)}  head {figure(r.head)}  {ratio}"


# --- the gate -----------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class AbReport:
    options: AbOptions
    revisions: Mapping[Side, Revision]
    comparisons: tuple[Comparison, ...]
    interrupted: bool = False

    def verdicts(self) -> dict[str, Verdict]:
        return {c.name: c.verdict(self.options.min_ratio) for c in self.comparisons}

    @property
    def exit_code(self) -> ExitCode:
        verdicts = set(self.verdicts().values())
        if "regression" in verdicts:
            return ExitCode.REGRESSION
        if "failed" in verdicts or self.interrupted:
            return ExitCode.CRASHED_OR_HUNG
        return ExitCode.PASSED


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
                     ) -> tuple[list[str], list[Comparison]]:
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
    new = [Comparison(name=n, not_compared="not in base (new in head)")
           for n in names if n not in base_names]
    return [n for n in names if n in base_names], new


def run_gate(options: AbOptions) -> AbReport:
    repo = repo_root(options.repo)
    shas = {"base": resolve_commit(repo, options.base_ref, "BASE_REF"),
            "head": resolve_commit(repo, options.head_ref, "HEAD_REF")}
    out_dir = options.out_dir.resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    refs: dict[Side, str] = {"base": options.base_ref, "head": options.head_ref}
    targets: dict[Side, str] = {"base": options.base_target, "head": options.head_target}
    started = time.monotonic()
    with _sigterm_unwinds(), workspace(repo, options.keep) as space:
        revisions: dict[Side, Revision] = {}
        for side in ("base", "head"):
            with group(f"ab: preparing {side} {refs[side]} ({shas[side][:12]})"):
                revisions[side] = prepare_revision(space, side=side, ref=refs[side],
                                                   sha=shas[side], target=targets[side],
                                                   out_dir=out_dir)
        names, new = choose_scenarios(revisions, options)
        comparisons, interrupted = measure_rounds(revisions, names, options, out_dir)
    report = AbReport(options=options, revisions=revisions,
                      comparisons=(*comparisons, *new), interrupted=interrupted)
    log.info("ab gate took %.0fs", time.monotonic() - started)
    write_outputs(report, out_dir)
    return report


# --- output -------------------------------------------------------------------------------

_MARK: dict[Verdict, str] = {"ok": "✅ ok", "regression": "❌ regression", "failed": "💥 failed",
                             "not compared": "➖ not compared"}
_COLUMNS = ("Scenario", "Rounds", "Base median", "Head median", "Median head/base",
            "Spread (min..max)", "IQR", "Verdict")


def _revision_label(revision: Revision) -> str:
    return f"{revision.ref} ({revision.sha[:12]})"


def headline(report: AbReport) -> str:
    text = _headline(report)
    if report.interrupted and not text.startswith("💥 Interrupted"):
        text += " (interrupted: on the rounds measured before)"
    return text


def _headline(report: AbReport) -> str:
    verdicts = report.verdicts()
    versus = (f"head {_revision_label(report.revisions['head'])} vs base "
              f"{_revision_label(report.revisions['base'])}")
    regressed = [c for c in report.comparisons if verdicts[c.name] == "regression"]
    failed = [c.name for c in report.comparisons if verdicts[c.name] == "failed"]
    failed_text = f"; no figures for {', '.join(failed)}" if failed else ""
    if regressed:
        figures = ", ".join(f"{c.name} {measured_text(s.median)}" for c in regressed
                            if (s := c.ratio_spread()) is not None)
        return f"❌ Regression: median head/base {figures}{failed_text} — {versus}"
    if report.interrupted:
        return f"💥 Interrupted before a verdict — {versus}"
    if failed:
        return f"💥 No verdict: {', '.join(failed)} failed to run — {versus}"
    compared = [c for c in report.comparisons if verdicts[c.name] == "ok"]
    if not compared:
        return f"➖ Nothing compared — {versus}"
    return f"✅ No regression in {len(compared)} scenario(s) — {versus}"


def table_rows(report: AbReport) -> list[tuple[str, ...]]:
    rows: list[tuple[str, ...]] = []
    min_ratio = report.options.min_ratio
    for c in report.comparisons:
        s = c.ratio_spread()
        base, head = c.side_median("base"), c.side_median("head")
        rows.append((
            c.name, str(len(c.ratios)),
            f"{base:,.0f} tokens/s" if base is not None else "-",
            f"{head:,.0f} tokens/s" if head is not None else "-",
            measured_text(s.median) if s else "-",
            f"{measured_text(s.low)}..{measured_text(s.high)}" if s else "-",
            f"{measured_text(s.q1)}..{measured_text(s.q3)}" if s else "-",
            _MARK[c.verdict(min_ratio)],
        ))
    return rows


def _details(report: AbReport) -> list[str]:
    lines = []
    for c in report.comparisons:
        if c.not_compared:
            lines.append(f"- {c.name}: {c.not_compared}")
        if c.ratios:
            lines.append(f"- {c.name}: head/base per round "
                         f"{', '.join(measured_text(r) for r in c.ratios)}")
        if c.suspect_median is not None:
            lines.append(f"- {c.name}: median {measured_text(c.suspect_median)} after "
                         f"{c.confirm_after} rounds was below the limit; the verdict is on all "
                         f"{len(c.ratios)} rounds, confirmation rounds included")
        lines.extend(f"- {c.name}: {problem}" for problem in c.problems)
    for revision in report.revisions.values():
        whose = "its own copy of the kit" if revision.own_kit else "the kit running the gate"
        lines.append(f"- {revision.side}: {_revision_label(revision)}, target "
                     f"`{revision.target}`, {whose}; {revision.setup}")
    return lines


def render_markdown(report: AbReport) -> str:
    rows = table_rows(report)
    confirm = report.options.confirm_rounds
    lines = [headline(report), "",
             f"Rule: {rule_text(report.options.max_drop_pct)}. Rounds alternate "
             "base/head order on this machine; each round's ratio is head/base throughput"
             + (f"; a scenario below the limit gets {confirm} more rounds, later, and is "
                "judged on all of them." if confirm else "."), ""]
    if rows:
        lines += ["| " + " | ".join(_COLUMNS) + " |",
                  "|" + "|".join(["---", "--:", "--:", "--:", "--:", "--:", "--:", "---"]) + "|"]
        lines += ["| " + " | ".join(row) + " |" for row in rows]
        lines.append("")
    lines += _details(report)
    return "\n".join(lines) + "\n"


def render_text(report: AbReport) -> str:
    rows = [_COLUMNS, *table_rows(report)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(_COLUMNS))]
    table = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
             for row in rows]
    return "\n".join([headline(report), f"Rule: {rule_text(report.options.max_drop_pct)}",
                      *table, *_details(report)]) + "\n"


def report_document(report: AbReport) -> dict[str, Any]:
    options = report.options
    verdicts = report.verdicts()

    def revision(r: Revision) -> dict[str, Any]:
        return {"ref": r.ref, "sha": r.sha, "target": r.target, "stress_file": r.stress_file,
                "own_kit": r.own_kit, "setup": r.setup}

    def measurement(m: Measurement) -> dict[str, Any]:
        return {"throughput": m.throughput, "problem": m.problem, "log": m.log}

    def comparison(c: Comparison) -> dict[str, Any]:
        s = c.ratio_spread()
        return {
            "name": c.name, "verdict": verdicts[c.name], "not_compared": c.not_compared,
            "ratios": c.ratios, "median_ratio": s.median if s else None,
            "min_ratio": s.low if s else None, "max_ratio": s.high if s else None,
            "q1_ratio": s.q1 if s else None, "q3_ratio": s.q3 if s else None,
            "base_median": c.side_median("base"), "head_median": c.side_median("head"),
            "problems": c.problems,
            "confirmation": None if c.suspect_median is None else {
                "after_rounds": c.confirm_after, "median_before": c.suspect_median},
            "rounds": [{"round": r.number, "order": list(r.order), "ratio": r.ratio,
                        "base": measurement(r.base), "head": measurement(r.head)}
                       for r in c.rounds],
        }

    return {
        "version": AB_VERSION,
        "headline": headline(report),
        "exit_code": int(report.exit_code),
        "rule": {"max_drop_pct": options.max_drop_pct, "min_ratio": options.min_ratio,
                 "text": rule_text(options.max_drop_pct)},
        "rounds": options.rounds, "confirm_rounds": options.confirm_rounds,
        "interrupted": report.interrupted, "scale": options.scale,
        "scenarios_file": str(options.scenarios_file) if options.scenarios_file else None,
        "base": revision(report.revisions["base"]), "head": revision(report.revisions["head"]),
        "scenarios": [comparison(c) for c in report.comparisons],
    }


def write_outputs(report: AbReport, out_dir: Path) -> None:
    markdown = render_markdown(report)
    (out_dir / "ab.json").write_text(json.dumps(report_document(report), indent=2,
                                                ensure_ascii=False) + "\n", encoding="utf-8")
    (out_dir / "ab.md").write_text(markdown, encoding="utf-8")
    step_summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if step_summary:
        try:
            with open(step_summary, "a", encoding="utf-8") as handle:
                handle.write(markdown + "\n")
        except OSError as exc:  # a courtesy; ab.md is written
            log.warning("could not append to $GITHUB_STEP_SUMMARY (%s): %s", step_summary, exc)
    verdicts = report.verdicts()
    for c in report.comparisons:
        s = c.ratio_spread()
        if verdicts[c.name] == "regression" and s is not None:
            annotate_error(f"stress ab: {c.name}",
                           f"median head/base {measured_text(s.median)} < "
                           f"{ratio_text(report.options.min_ratio)}: throughput dropped "
                           f"{(1 - s.median) * 100:.0f}% (limit {report.options.max_drop_pct:g}%)")
        elif verdicts[c.name] == "failed":
            annotate_error(f"stress ab: {c.name}", "; ".join(c.problems) or "no figures")
