"""The instruction-count measure: parsing, ranking and the missing-valgrind message (fast),
and determinism, a known slowdown and the named culprit under real valgrind (slow)."""

from __future__ import annotations

import functools
import glob
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from stress.errors import StressError
from stress.profiling import callgrind, instructions
from stress.profiling.callgrind import (
    function_costs,
    growth_table,
    parse_callgrind,
    per_token_costs,
    slower_functions,
)
from stress.profiling.instructions import (
    ChildCommand,
    InstructionCount,
    InstructionCounter,
    InstructionRunError,
    InstructionsPerToken,
    ValgrindMissing,
    count_instructions,
    find_valgrind,
    instructions_per_token,
    named_function_costs,
    naming_note,
    valgrind_command,
)

WORKLOAD = Path(instructions.__file__).with_name("instruction_workload.py")
TOKENS = 1_000  # the measure runs at 1,000 and 2,000: a few seconds under valgrind

# Two trampolines (render called from consume), one C function, a compressed name reused,
# and a second recursion level that the first level's inclusive cost already holds.
CALLGRIND_FILE = """\
# callgrind format
version: 1
pid: 4242
positions: line
events: Ir
summary: 1000

ob=(1) /usr/lib/libpython3.12.so
fl=(1) ceval.c
fn=(1) _PyEval_EvalFrameDefault
0 300
cfn=(2) PyObject_Malloc
calls=3 0
0 50

ob=(2) ???
fl=(2) ???
fn=(3) 0x0000000000001000
0 2
cob=(1)
cfn=(1)
calls=1 0
0 600
fn=(4) 0x0000000000002000
0 2
cob=(1)
cfn=(1)
calls=4 0
0 200
fn=(5) 0x0000000000002000'2
0 1
cob=(1)
cfn=(1)
calls=1 0
0 40

ob=(1)
fn=(2)
0 50
"""
PERF_MAP = {0x1000: "py::consume:/nowhere/pipeline.py", 0x2000: "py::render:/nowhere/pipeline.py"}


def test_callgrind_costs_are_read_with_compressed_names_and_calls() -> None:
    profile = parse_callgrind(CALLGRIND_FILE.splitlines(keepends=True))
    assert (profile.pid, profile.total) == (4242, 1000)
    costs = {f.name: (f.self_cost, f.inclusive) for f in profile.functions}
    assert costs["_PyEval_EvalFrameDefault"] == (300, 350)
    assert costs["PyObject_Malloc"] == (50, 50)
    assert costs["0x0000000000001000"] == (2, 602)
    assert costs["0x0000000000002000"] == (2, 202)


def test_trampolines_are_named_through_the_perf_map_and_deeper_levels_not_counted() -> None:
    profile = parse_callgrind(CALLGRIND_FILE.splitlines(keepends=True))
    assert function_costs(profile, PERF_MAP) == {"consume (/nowhere/pipeline.py)": 602,
                                                 "render (/nowhere/pipeline.py)": 202}
    # Without a map (Python 3.11, perf support off) the C functions are what there is.
    native = function_costs(profile, None)
    assert native["_PyEval_EvalFrameDefault [libpython3.12.so]"] == 350
    assert "0x0000000000001000 [???]" in native


def test_a_run_without_python_names_says_its_functions_are_c_functions() -> None:
    profile = parse_callgrind(CALLGRIND_FILE.splitlines(keepends=True))
    count = InstructionCount(instructions=profile.total, tokens=0, valgrind_version="v",
                             tool="callgrind", seconds=0.0, profile=profile)
    note = naming_note(count)
    assert note is not None
    assert "Python 3.12+" in note
    assert "_PyEval_EvalFrameDefault [libpython3.12.so]" in named_function_costs(count)

def test_per_token_costs_take_the_fixed_part_out() -> None:
    small = {"render": 1_000 + 500 * 30, "import": 9_000}
    large = {"render": 1_000 + 1_000 * 30, "import": 9_000, "new": 500}
    assert per_token_costs(small, large, 500) == {"render": 30.0, "import": 0.0, "new": 1.0}


def test_the_slowed_function_ranks_above_the_callers_that_grew_by_as_much() -> None:
    base = {"main": 10_000.0, "consume": 3_000.0, "render": 1_000.0, "checksum": 800.0,
            "Queue.get": 400.0}
    head = {"main": 11_001.0, "consume": 4_000.0, "render": 2_000.0, "checksum": 800.0,
            "Queue.get": 402.0, "helper": 30.0}
    rows = slower_functions(base, head, top=4)
    assert [r.function for r in rows] == ["render", "consume", "main", "helper"]
    assert rows[0].ratio == pytest.approx(2.0)
    assert slower_functions(base, base) == []
    table = growth_table(rows)
    assert "| `render` | 1,000 | 2,000 | 2.000 |" in table
    assert "| `helper` | 0 | 30 | new |" in table


def test_valgrind_command_counts_instructions_only_with_a_fixed_hash_seed(
        tmp_path: Path) -> None:
    argv, env = valgrind_command([sys.executable, "-c", "pass"], {"A": "1"},
                                 out_file=tmp_path / "out", log_file=tmp_path / "log",
                                 valgrind="/opt/valgrind")
    assert argv[:3] == ["/opt/valgrind", "--tool=cachegrind",
                        f"--cachegrind-out-file={tmp_path / 'out'}"]
    assert "--cache-sim=no" in argv
    assert argv[-2:] == ["-c", "pass"]
    assert env == {"A": "1", "PYTHONHASHSEED": "0"}
    _, env = valgrind_command([sys.executable], {}, out_file=tmp_path / "o",
                              log_file=tmp_path / "l", tool="callgrind",
                              valgrind="/opt/valgrind", python_names=True)
    assert env["PYTHONPERFSUPPORT"] == "1"


def test_without_valgrind_on_the_path_the_measure_says_so_in_one_line(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    assert find_valgrind() is None
    with pytest.raises(ValgrindMissing) as caught:
        count_instructions(lambda n: ([sys.executable, str(WORKLOAD), str(n)], {}), 10)
    message = str(caught.value)
    assert isinstance(caught.value, StressError)
    assert "\n" not in message
    assert "valgrind is not installed" in message
    assert "apt-get install valgrind" in message



FAKE_VALGRIND = """#!/bin/sh
# Writes the next total from $COUNTS (one a line) as cachegrind would, for the tokens asked.
case "$1" in --version) echo valgrind-0.0-fake; exit 0;; esac
for arg; do case "$arg" in --cachegrind-out-file=*) out="${arg#*=}";; esac; done
tokens="$(eval echo \\${$#})"
n=$(cat "$COUNTS.next" 2>/dev/null || echo 1)
echo $((n + 1)) > "$COUNTS.next"
extra=$(sed -n "${n}p" "$COUNTS")
echo "summary: $((1000000 + 50 * tokens + extra))" > "$out"
"""


def test_repeats_outvote_a_run_that_counted_differently(
        tmp_path: Path) -> None:
    fake = tmp_path / "valgrind"
    fake.write_text(FAKE_VALGRIND, encoding="utf-8")
    fake.chmod(0o755)
    counts = tmp_path / "counts"
    # The small size's second run and the large size's first counted 25,000 more.
    counts.write_text("0\n25000\n0\n25000\n0\n0\n", encoding="utf-8")
    # valgrind gets the child's environment: the fake reads its script from there.
    command: ChildCommand = lambda n: ([sys.executable, str(WORKLOAD), str(n)],  # noqa: E731
                                       {"COUNTS": str(counts)})
    measured = instructions_per_token(command, 100, valgrind=str(fake), repeats=3, warm=False)
    assert measured.per_token == 50.0
    assert measured.repeat_spread == 25_000
    assert measured.small.valgrind_version == "valgrind-0.0-fake"
    assert measured.fixed == 1_000_000
    (tmp_path / "counts.next").write_text("2\n", encoding="utf-8")
    once = instructions_per_token(command, 100, valgrind=str(fake), warm=False)
    assert once.per_token == 50 - 25_000 / 100  # one run a size: the odd count goes through


# --- under valgrind ------------------------------------------------------------------------

needs_valgrind = pytest.mark.skipif(shutil.which("valgrind") is None,
                                    reason="valgrind is not installed")


def workload(*options: str, interpreter: str = sys.executable) -> ChildCommand:
    return lambda tokens: ([interpreter, str(WORKLOAD), str(tokens), *options],
                           {"PATH": "/usr/bin:/bin"})


def measure(*options: str) -> InstructionsPerToken:
    return instructions_per_token(workload(*options), TOKENS)


@functools.cache
def measured(*options: str) -> InstructionsPerToken:
    """One measurement per workload for the whole module: each costs two valgrind runs."""
    return measure(*options)


@pytest.mark.slow
@needs_valgrind
def test_two_runs_of_the_same_code_agree_within_a_tenth_of_a_percent() -> None:
    first, second = measured("--work", "20"), measure("--work", "20")
    assert second.per_token / first.per_token == pytest.approx(1.0, abs=0.001)
    assert (first.small.tokens, first.large.tokens) == (TOKENS, 2 * TOKENS)
    assert first.small.valgrind_version.startswith("valgrind-")
    assert first.fixed > 10 * first.per_token  # start-up and imports were taken out


@pytest.mark.slow
@needs_valgrind
def test_a_known_amount_of_added_work_is_measured_as_its_factor() -> None:
    # render's steps 20 -> 40 -> 60: each step of 20 adds the same instructions a token, so
    # the third size's factor is known from the first two.
    base, more, most = (measured("--work", str(work)) for work in (20, 40, 60))
    step = more.per_token - base.per_token
    assert step > 0.05 * base.per_token
    expected = (base.per_token + 2 * step) / base.per_token
    assert most.per_token / base.per_token == pytest.approx(expected, rel=0.01)


def python_with_perf_support() -> str | None:
    """A 3.12+ interpreter (perf trampoline): this one, or one pyenv installed."""
    if sys.version_info >= (3, 12):
        return sys.executable
    for candidate in sorted(glob.glob("/root/.pyenv/versions/3.1[2-9]*/bin/python3")):
        done = subprocess.run([candidate, "-c", "pass"], capture_output=True, check=False)
        if done.returncode == 0:
            return candidate
    return None


@pytest.mark.slow
@needs_valgrind
def test_the_regression_table_names_the_function_that_was_slowed() -> None:
    interpreter = python_with_perf_support()
    if interpreter is None:
        pytest.skip("no Python 3.12+ for the perf trampoline")
    counts = [count_instructions(workload(*options, interpreter=interpreter), 300,
                                 tool="callgrind", python_names=True)
              for options in ((), ("--slow", "checksum=2"))]
    assert [naming_note(count) for count in counts] == [None, None]
    costs = [named_function_costs(count) for count in counts]
    base, head = costs
    rows = slower_functions(base, head, top=5)
    assert rows[0].function == "checksum (stress/profiling/instruction_workload.py)"
    assert rows[0].ratio > 1.5
    assert "render (stress/profiling/instruction_workload.py)" not in \
        [r.function for r in rows]
    assert callgrind.python_label("py::f:<frozen runpy>") == "f (<frozen runpy>)"


@pytest.mark.slow
@needs_valgrind
def test_a_caller_that_spawns_the_child_itself_wraps_it_and_reads_the_count() -> None:
    counter = InstructionCounter()
    try:
        argv, env = counter.wrap([sys.executable, "-I", "-S", "-c", "pass"], {})
        assert subprocess.run(argv, env=env, check=False).returncode == 0
        count = counter.read(0)
    finally:
        counter.close()
    assert count.instructions > 1_000_000
    assert (count.tokens, count.tool) == (0, "cachegrind")


@pytest.mark.slow
@needs_valgrind
def test_a_child_that_fails_under_valgrind_is_an_error_not_a_count() -> None:
    with pytest.raises(InstructionRunError, match=r"exited with 1 under valgrind.*boom"):
        count_instructions(lambda n: ([sys.executable, "-I", "-S", "-c",
                                       "import sys; sys.exit('boom')"], {}), 10)
