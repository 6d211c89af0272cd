"""The instruction measure wired into run and ab: which measure judges what, the reports, the
missing-valgrind refusal (fast), and determinism, a known slowdown and the named function
under real valgrind (slow)."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from stress.ab.gate import read_measurement
from stress.ab.instructions import growth_from, run_flags
from stress.ab.model import (
    DEFAULT_MAX_DROP_PCT,
    DEFAULT_MAX_GROWTH_PCT,
    AbOptions,
    AbReport,
    Measurement,
    Revision,
    Round,
    ScenarioRounds,
    Side,
    measure_for,
)
from stress.ab.render import render_markdown, report_document
from stress.commands import ab as ab_command
from stress.config.scenario import Scenario
from stress.engine.instructions import (
    InstructionFigures,
    measure_instructions,
    read_functions,
    sized,
    write_functions,
)
from stress.engine.sampler import Sampler
from stress.errors import ExitCode
from stress.report.html import render_html
from stress.report.read import parse_blocks
from stress.report.summary import render_summary
from stress.report.text import format_block
from stress.results import Metrics, Result, results_document
from stress.target import Stats

REPO = Path(__file__).resolve().parent.parent
SCENARIO = Scenario(name="short", title="Short", messages=1_000_000, message_size=10)


def counted(number: int, base: float, head: float) -> Round:
    return Round(number=number, measure="instructions",
                 base=Measurement(throughput=1e5, instructions_per_token=base, log="b.log"),
                 head=Measurement(throughput=1e5, instructions_per_token=head, log="h.log"))


def revision(side: str) -> Revision:
    return Revision(side="base" if side == "base" else "head", ref=side, sha=side[0] * 40,
                    target="mod:factory", tree=Path("tree"), cwd=Path("run"), env={},
                    stress_file="stress/__init__.py", own_kit=False, setup="its folder first")


def report(*comparisons: ScenarioRounds) -> AbReport:
    return AbReport(options=AbOptions(base_ref="base", head_ref="head", measure="auto"),
                    revisions={"base": revision("base"), "head": revision("head")},
                    comparisons=comparisons)


def test_auto_counts_instructions_for_unpaced_scenarios_and_times_paced_ones() -> None:
    assert measure_for("auto", 0.0, 0.0) == "instructions"
    assert measure_for("auto", 10.0, 0.0) == "wall"
    assert measure_for("auto", 0.0, 100.0) == "wall"
    assert measure_for("instructions", 10.0, 0.0) == "instructions"
    assert measure_for("wall", 0.0, 0.0) == "wall"
    assert run_flags("wall", AbOptions(base_ref="a", head_ref="b")) == []
    assert run_flags("instructions", AbOptions(base_ref="a", head_ref="b",
                                               instruction_tokens=500)) == [
        "--measure", "instructions", "--instruction-tokens", "500"]


def test_an_instruction_ratio_is_head_over_base_counts_and_judged_against_its_own_limit() -> None:
    grown = ScenarioRounds(name="short", measure="instructions",
                           rounds=(counted(1, 1000.0, 1031.0),))
    same = ScenarioRounds(name="medium", measure="instructions",
                          rounds=(counted(1, 1000.0, 1029.0),))
    assert grown.rounds[0].ratio == pytest.approx(1.031)
    assert grown.verdict(0.8, 1.03) == "regression"
    assert same.verdict(0.8, 1.03) == "ok"
    assert grown.side_median("head") == 1031.0
    # The wall-time figures beside it do not judge it.
    assert grown.verdict(0.99, 1.05) == "ok"
    missing = ScenarioRounds(name="x", measure="instructions", rounds=(Round(
        number=1, measure="instructions", base=Measurement(throughput=1.0),
        head=Measurement(problem="No instruction count: boom")),))
    assert missing.verdict(0.8) == "failed"


def test_ab_md_says_which_measure_judged_each_scenario_and_lists_the_functions_that_grew(
        ) -> None:
    table = "| function | base instructions/token | head instructions/token | head/base |"
    grown = ScenarioRounds(name="short", measure="instructions",
                           rounds=(counted(1, 1600.0, 1700.0),), growth_table=table,
                           growth_notes=("No flamegraphs: left out",))
    paced = ScenarioRounds(name="rapid", rounds=tuple(
        Round(number=i, base=Measurement(throughput=1000.0), head=Measurement(throughput=990.0))
        for i in (1, 2, 3)))
    text = render_markdown(report(grown, paced))
    assert text.startswith("❌ Regression: median head/base short 1.0625 (instructions per "
                           "token)")
    assert "| Scenario | Measure | Rounds |" in text
    assert ("| short | instructions | 1 | 1,600.0 instr/token | 1,700.0 instr/token | 1.0625 |"
            in text)
    assert "| rapid | wall time | 3 | 1,000 tokens/s | 990 tokens/s | 0.990 |" in text
    assert "instructions: regression when head/base instructions per token > 1.03" in text
    assert "wall time: regression when median head/base < 0.80" in text
    assert "### short: the functions whose instructions per token grew most" in text
    assert table in text
    document = report_document(report(grown, paced))
    assert [s["measure"] for s in document["scenarios"]] == ["instructions", "wall"]
    assert document["instruction_rule"]["max_ratio"] == pytest.approx(1.03)
    assert document["scenarios"][0]["rounds"][0]["head"]["instructions_per_token"] == 1700.0


def test_the_command_defaults_are_the_models() -> None:
    parser = argparse.ArgumentParser()
    ab_command.configure(parser)
    args = parser.parse_args(["a", "b"])
    assert (args.max_drop, args.max_growth) == (DEFAULT_MAX_DROP_PCT, DEFAULT_MAX_GROWTH_PCT)
    assert args.measure == "wall"
    assert args.instruction_tokens == AbOptions(base_ref="a", head_ref="b").instruction_tokens
    assert args.jobs == AbOptions(base_ref="a", head_ref="b").jobs == 0  # one per CPU


def result_with(per_token: float | None, tmp_path: Path) -> Path:
    metrics = Metrics(tokens_received=100, duration_s=1.0, throughput=100.0,
                      instructions_per_token=per_token)
    result = Result(scenario=SCENARIO, status="passed", metrics=metrics,
                    notes=() if per_token else ("No instruction count: the child crashed",))
    path = tmp_path / "results.json"
    path.write_text(json.dumps(results_document([result])), encoding="utf-8")
    return path


def test_a_counted_run_without_a_count_is_a_problem_not_a_figure(tmp_path: Path) -> None:
    log = tmp_path / "run.log"
    log.write_text("x\n", encoding="utf-8")
    found = read_measurement(result_with(1234.5, tmp_path), "short", 0, log, "run.log",
                             counted=True)
    assert found.instructions_per_token == 1234.5
    missing = read_measurement(result_with(None, tmp_path), "short", 0, log, "run.log",
                               counted=True)
    assert missing.problem == "No instruction count: the child crashed"


def test_the_figure_is_in_the_text_block_and_read_back_and_in_summary_and_html() -> None:
    result = Result(scenario=SCENARIO, status="passed", metrics=Metrics(
        tokens_received=1000, duration_s=0.1, throughput=10_000.0,
        instructions_per_token=1601.25))
    block = format_block(result)
    assert "  Instructions per token: 1601.2 (valgrind)" in block.splitlines() or \
        "  Instructions per token: 1601.3 (valgrind)" in block.splitlines()
    assert parse_blocks(block)[0].metrics.instructions_per_token == pytest.approx(1601.25,
                                                                                  abs=0.1)
    assert "Instructions per token (valgrind, start-up taken out): short 1,601.2" in \
        render_summary([result]) or "short 1,601.3" in render_summary([result])
    assert "Instructions per token" in render_html([result])
    plain = Result(scenario=SCENARIO, status="passed", metrics=Metrics(throughput=1.0))
    assert "Instructions per token" not in format_block(plain)


def test_a_scenario_is_sized_to_the_tokens_counted_with_its_conversations_kept() -> None:
    concurrent = Scenario(name="c", title="C", messages=100_000, conversations=10)
    assert sized(concurrent, 10_000).expected_tokens == 10_000
    assert sized(concurrent, 10_000).conversations == 10
    assert sized(SCENARIO, 20_000).messages == 20_000


def test_the_function_costs_go_through_an_artifact_both_sides_write(tmp_path: Path) -> None:
    def figures(render: float) -> InstructionFigures:
        return InstructionFigures(
            per_token=2000.0, small_tokens=10, large_tokens=20, fixed=1.0, seconds=1.0,
            valgrind_version="valgrind-x", tool="callgrind", naming_note=None,
            functions={"consume (app.py)": 900.0 + render, "render (app.py)": render,
                       "checksum (app.py)": 300.0})
    dirs = {"base": tmp_path / "base", "head": tmp_path / "head"}
    for (_side, folder), render in zip(dirs.items(), (100.0, 200.0), strict=True):
        folder.mkdir()
        assert write_functions(figures(render), folder, "short") == "functions-short.json"
    assert read_functions(dirs["base"] / "functions-short.json")[0]["render (app.py)"] == 100.0
    table, notes = growth_from(dirs, "short")  # type: ignore[arg-type]
    assert table.splitlines()[2].startswith("| `render (app.py)` | 100 | 200 | 2.000 |")
    assert notes == ()  # named functions, nothing to excuse


def test_a_quiet_sampler_starts_no_thread_and_sets_no_timer(tmp_path: Path) -> None:
    sampler = Sampler(tmp_path / "samples.jsonl", 0.001, background=False)
    sampler.start()
    async def phase() -> None:
        sampler.set_phase("run", Stats())
        await asyncio.sleep(0.05)

    asyncio.run(phase())
    sampler.close()
    lines = (tmp_path / "samples.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(lines) == 2  # set_phase's and close's: nothing by the clock


def without_valgrind(tmp_path: Path) -> dict[str, str]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "python").symlink_to(sys.executable)
    return {**os.environ, "PATH": str(bin_dir)}


@pytest.mark.parametrize("argv", [
    ["run", "short", "--measure", "instructions", "--out", "{tmp}/out"],
    ["ab", "HEAD", "HEAD", "short", "--measure", "auto", "--out", "{tmp}/ab"],
])
def test_without_valgrind_the_measure_is_refused_in_one_line_with_exit_2(
        tmp_path: Path, argv: list[str]) -> None:
    done = subprocess.run([sys.executable, "-m", "stress", *(a.format(tmp=tmp_path)
                                                            for a in argv)],
                          env=without_valgrind(tmp_path), cwd=REPO, capture_output=True,
                          text=True, timeout=120, check=False)
    assert done.returncode == ExitCode.USAGE_ERROR
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, done.stderr
    assert "instruction counts need valgrind: valgrind is not installed" in lines[0]
    assert "apt-get install valgrind" in lines[0]
    assert not (tmp_path / "out" / "results.json").exists()


# --- under valgrind ------------------------------------------------------------------------

needs_valgrind = pytest.mark.skipif(shutil.which("valgrind") is None,
                                    reason="valgrind is not installed")
TOKENS = 5_000  # fixed costs that vary by a few polls stay under 0.1% of a token


def measured(target: str, tool: str = "cachegrind") -> InstructionFigures:
    # The child's output goes to a real file, as the runner's scenario log.
    log_path = Path(tempfile.gettempdir()) / f"stress-test-counted-{target}-{tool}.log"
    with log_path.open("w", encoding="utf-8") as log_file:
        return measure_instructions(SCENARIO, target=f"tests.targets.counted:{target}",
                                    loop="asyncio", log_file=log_file, tokens=TOKENS,
                                    tool="callgrind" if tool == "callgrind" else "cachegrind")


@pytest.fixture(scope="module")
def work20() -> InstructionFigures:
    return measured("work20")


@pytest.mark.slow
@needs_valgrind
def test_two_counts_of_the_same_code_agree_within_a_tenth_of_a_percent(
        work20: InstructionFigures) -> None:
    again = measured("work20")
    assert again.per_token / work20.per_token == pytest.approx(1.0, abs=0.001)
    assert (work20.small_tokens, work20.large_tokens) == (TOKENS, 2 * TOKENS)
    assert work20.fixed > 10 * work20.per_token  # start-up and imports were taken out


@pytest.mark.slow
@needs_valgrind
def test_a_per_token_slowdown_of_a_known_factor_is_measured_as_that_factor(
        work20: InstructionFigures) -> None:
    more, most = measured("work40"), measured("work60")
    step = more.per_token - work20.per_token
    assert step > 0.05 * work20.per_token
    expected = (work20.per_token + 2 * step) / work20.per_token
    assert most.per_token / work20.per_token == pytest.approx(expected, rel=0.01)


@pytest.mark.slow
@needs_valgrind
def test_callgrind_gives_each_functions_cost_and_names_the_slowed_one() -> None:
    base = measured("work20", "callgrind")
    assert base.functions
    if sys.version_info < (3, 12):
        # C functions only: the note says why (the gate puts it under the table).
        assert base.naming_note is not None
        assert "3.12" in base.naming_note
        pytest.skip("Python functions are named through the perf trampoline (3.12+); this "
                    f"interpreter is {sys.version_info.major}.{sys.version_info.minor}")
    head = measured("slow_checksum", "callgrind")
    assert head.functions
    from stress.profiling.callgrind import slower_functions

    rows = slower_functions(base.functions, head.functions, top=5)
    assert rows[0].function.startswith("checksum (")


def test_compare_judges_instructions_per_token_when_both_sides_have_them() -> None:
    from stress.compare import compare, format_comparison

    def run(throughput: float, per_token: float | None) -> list[Result]:
        return [Result(scenario=SCENARIO, status="passed", metrics=Metrics(
            duration_s=1.0, throughput=throughput, instructions_per_token=per_token))]

    # Throughput fell 30% (noise on a shared runner); the counts grew 1%: not a regression.
    calm = compare(run(1000.0, 1600.0), run(700.0, 1616.0))
    assert calm.rows[0].measure == "instructions"
    assert calm.rows[0].ratio == pytest.approx(1.01)
    assert not calm.regressions
    grown = compare(run(1000.0, 1600.0), run(1000.0, 1700.0))
    assert grown.regressions
    assert "current/baseline instructions > 1.03" in format_comparison(grown, "a", "b")
    assert compare(run(1000.0, 1600.0), run(700.0, None)).regressions  # wall time judges


def test_an_instruction_regression_reruns_both_sides_under_callgrind_for_the_table(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from stress.ab import gate

    calls: list[tuple[str, str]] = []

    def fake_measure(revision: Revision, name: str, number: int, options: AbOptions,
                     out_dir: Path, *, kind: str = "wall") -> Measurement:
        calls.append((revision.side, kind))
        run_dir = out_dir / "runs" / name / f"r{number:02d}-{revision.side}-{kind}"
        run_dir.mkdir(parents=True)
        render = 100.0 if revision.side == "base" else 300.0
        write_functions(InstructionFigures(
            per_token=1.0, small_tokens=1, large_tokens=2, fixed=0.0, seconds=0.0,
            valgrind_version="v", tool="callgrind", naming_note="C functions only",
            functions={"render [python3.11]": render, "main [python3.11]": 1000 + render}),
            run_dir, name)
        return Measurement(throughput=1.0, instructions_per_token=1.0, log="x.log")

    monkeypatch.setattr(gate, "measure", fake_measure)
    regressed = ScenarioRounds(name="short", measure="instructions",
                               rounds=(counted(1, 1000.0, 1100.0),))
    fine = ScenarioRounds(name="medium", measure="instructions",
                          rounds=(counted(1, 1000.0, 1000.0),))
    options = AbOptions(base_ref="a", head_ref="b", measure="instructions")
    explained = gate.explain_regressions({"base": revision("base"), "head": revision("head")},
                                         [regressed, fine], options, tmp_path)
    assert sorted(calls[:2]) == [("base", "callgrind"), ("head", "callgrind")]  # at once
    assert calls[2:] == [("base", "cpu"), ("head", "cpu")]  # then the flamegraphs' runs
    assert explained[1] is fine
    table = explained[0].growth_table
    assert table is not None
    assert table.splitlines()[2].startswith("| `render [python3.11]` | 100 | 300 | 3.000 |")
    assert "C functions only" in explained[0].growth_notes


def test_a_revision_whose_kit_cannot_count_is_judged_on_wall_time_and_ab_md_says_so(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from stress.ab import instructions

    monkeypatch.setattr(instructions, "counts_instructions",
                        lambda revision: revision.side == "head")
    revisions: dict[Side, Revision] = {"base": revision("base"), "head": revision("head")}
    measures, note = instructions.scenario_measures(
        revisions, ["short"], AbOptions(base_ref="a", head_ref="b", measure="auto"))
    assert measures == {"short": "wall"}
    assert note is not None
    assert "base revision's own kit has no `run --measure`" in note
    assert instructions.scenario_measures(revisions, ["short"], AbOptions(
        base_ref="a", head_ref="b")) == ({"short": "wall"}, None)
    shown = AbReport(options=AbOptions(base_ref="a", head_ref="b", measure="auto"),
                     revisions=revisions, comparisons=(), notes=(note,))
    assert f"- {note}" in render_markdown(shown)
