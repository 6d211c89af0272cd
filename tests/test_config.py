"""Scenario files: the built-in one matches the seed; bad files get one clear line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from stress.config.scenario import FLOAT_FIELDS, INT_FIELDS, Scenario, ScenarioError
from stress.config.scenarios import apply_overrides, load_scenarios, parse_scenarios, select
from stress.errors import ConfigError


def test_builtin_scenarios_carry_the_seed_sizes_and_baselines() -> None:
    scenarios = load_scenarios()
    assert list(scenarios) == ["short", "medium", "long", "rapid", "backpressure",
                               "concurrent", "errors"]
    short, medium, long_ = scenarios["short"], scenarios["medium"], scenarios["long"]
    assert (short.messages, short.message_size) == (1_000_000, 10)
    assert short.thresholds.min_throughput == 10_000
    assert short.thresholds.max_memory_growth_mb == 100
    assert short.timeout_s == 60
    assert (medium.messages, medium.message_size) == (1_000_000, 100)
    assert medium.thresholds.min_throughput == 5_000
    assert medium.thresholds.max_memory_growth_mb == 500
    assert (long_.messages, long_.message_size) == (1_000, 10_000)
    assert long_.thresholds.min_throughput == 100
    rapid = scenarios["rapid"]
    assert (rapid.messages, rapid.token_delay_us) == (1_000_000, 10)
    assert rapid.thresholds.max_quit_latency_ms == 1000
    backpressure = scenarios["backpressure"]
    assert (backpressure.messages, backpressure.channel_buffer) == (100_000, 100)
    assert backpressure.consumer_delay_us == 100
    assert backpressure.thresholds.max_loss_pct == 1.0
    assert scenarios["concurrent"].conversations > 1
    assert scenarios["errors"].error_rate > 0


def test_user_file_is_loaded(tmp_path: Path) -> None:
    path = tmp_path / "mine.yaml"
    path.write_text("scenarios:\n  tiny:\n    title: Tiny\n    messages: 5\n"
                    "    thresholds: {max_loss_pct: 0.5}\n", encoding="utf-8")
    (tiny,) = load_scenarios(path).values()
    assert tiny.name == "tiny"
    assert tiny.messages == 5
    assert tiny.thresholds.max_loss_pct == 0.5


BAD_FILES = [
    ("scenarios:\n  s:\n    title: T\n    mesages: 5\n",
     "scenario 's': unknown key 'mesages'; did you mean 'messages'?"),
    ("scenarios:\n  s:\n    title: T\n    messages: many\n",
     "scenario 's': key 'messages' is 'many'; expected a whole number >= 1"),
    ("scenarios:\n  s:\n    title: T\n    messages: 0\n",
     "scenario 's': key 'messages' is 0; expected a whole number >= 1"),
    ("scenarios:\n  s:\n    title: T\n    messages: true\n",
     "key 'messages' is True; expected a whole number"),
    ("scenarios:\n  s:\n    title: T\n    messages: 5\n    error_rate: 2\n",
     "key 'error_rate' is 2.0; expected a fraction from 0 to 1"),
    ("scenarios:\n  s:\n    title: T\n    messages: 5\n    token_delay_us: -1\n",
     "key 'token_delay_us' is -1; expected a number >= 0"),
    ("scenarios:\n  s:\n    title: T\n    messages: 5\n    thresholds: {min_throughput: fast}\n",
     "key 'thresholds.min_throughput' is 'fast'; expected a number >= 0"),
    ("scenarios:\n  s:\n    title: T\n    messages: 5\n    thresholds: {max_los_pct: 1}\n",
     "thresholds: unknown key 'max_los_pct'; did you mean 'max_loss_pct'?"),
    ("scenarios:\n  s:\n    title: T\n    messages: 5\n    thresholds: {max_loss_pct: 150}\n",
     "expected a percentage from 0 to 100"),
    ("scenarios:\n  s:\n    messages: 5\n", "scenario 's': key 'title' is missing"),
    ("scenarios:\n  s:\n    title: T\n    messages: 5\n    timeout_s: 0\n",
     "key 'timeout_s' is 0; expected seconds > 0"),
    ("scenarios:\n  bad name:\n    title: T\n    messages: 5\n", "may hold only letters"),
    ("scenarios: [1, 2]\n", "expected a mapping with a 'scenarios' key"),
    ("scenario:\n  s: {}\n", "expected a mapping with a 'scenarios' key"),
    ("scenarios:\n  s: [\n", "is not valid YAML"),
    ("version: 2\nscenarios:\n  s:\n    title: T\n    messages: 5\n", "key 'version' is 2"),
]


@pytest.mark.parametrize(("text", "expected"), BAD_FILES)
def test_bad_file_gets_one_line_naming_file_scenario_and_key(
        tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_scenarios(path)
    message = str(caught.value)
    assert message.startswith(f"{path}:")
    assert expected in message
    assert "\n" not in message


def test_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"nope\.yaml: cannot read scenarios file"):
        load_scenarios(tmp_path / "nope.yaml")


def test_select_keeps_order_and_suggests_names() -> None:
    scenarios = parse_scenarios(
        "scenarios:\n  alpha: {title: A, messages: 1}\n  beta: {title: B, messages: 1}\n",
        source="f.yaml")
    assert [s.name for s in select(scenarios, ["beta", "alpha"], "f.yaml")] == ["beta", "alpha"]
    assert [s.name for s in select(scenarios, [], "f.yaml")] == ["alpha", "beta"]
    with pytest.raises(ConfigError, match="no scenario named 'alpah'; did you mean 'alpha'"):
        select(scenarios, ["alpah"], "f.yaml")


def test_scaled_shrinks_messages_but_never_to_zero() -> None:
    short = load_scenarios()["short"]
    assert short.scaled(0.001).messages == 1000
    assert short.scaled(1e-9).messages == 1
    assert short.scaled(1.0) is short


# -- hostile and surprising input (one line each, bounded work) -----------------------------

# Nine levels of nine aliases: 9**9 (387 million) strings once expanded, from about 350 bytes.
# The unbounded loader built it (shared references, cheap) and the validator's repr() of the
# value expanded it: 2.2 GB and 50 s, then a MemoryError traceback.
ALIAS_BOMB = "".join(
    ["scenarios:\n  s:\n    title: T\n    messages:\n",
     f'    - &a [{",".join(["lol"] * 9)}]\n']
    + [f"    - &{name} [{','.join([f'*{prev}'] * 9)}]\n"
       for prev, name in zip("abcdefg", "bcdefgh", strict=True)]
    + ["    - [" + ",".join(["*h"] * 9) + "]\n"]
)


HOSTILE_FILES = [
    (ALIAS_BOMB, "aliases expand to more than 10,000 values"),
    ("a: &a [*a]\nscenarios: {}\n", "alias *a refers to its own anchor"),
    ("scenarios: " + "[" * 5000 + "]" * 5000 + "\n", "nesting deeper than 50 levels"),
    ("scenarios:\n" + "".join("  " * i + f"k{i}:\n" for i in range(1, 200)) + "\n",
     "nesting deeper than 50 levels"),
    ("scenarios:\n  s: {title: A, messages: 1}\n  s: {title: B, messages: 2}\n",
     "line 3: key 's' appears twice in one mapping; keep one"),
    ("scenarios:\n  s:\n    title: A\n    messages: 1\n    messages: 2\n",
     "key 'messages' appears twice"),
    ("scenarios:\n  yes: {title: A, messages: 1}\n",
     "key yes is read as a true/false value by YAML, not as text; quote it: 'yes'"),
    ("scenarios:\n  0x10: {title: A, messages: 1}\n", "key 0x10 is read as a number"),
    ("scenarios:\n  1: {title: A, messages: 1}\n  '1': {title: B, messages: 1}\n",
     "key 1 is read as a number by YAML, not as text; quote it: '1'"),
    ("scenarios:\n  " + "x" * 300 + ": {title: A, messages: 1}\n",
     "the name has 300 characters; at most 64 are allowed"),
    ("scenarios:\n  s: {title: A, messages: 1, token_delay_us: .nan}\n",
     "key 'token_delay_us' is nan; expected a finite number"),
    ("scenarios:\n  s: {title: A, messages: 1, thresholds: {max_leaked_mb: .inf}}\n",
     "key 'thresholds.max_leaked_mb' is inf; expected a finite number"),
    ("scenarios:\n  s: {title: A, messages: 1e12}\n",
     "key 'messages' is '1e12'; expected a whole number >= 1 (YAML 1.1 reads '1e12' as text"),
    ("scenarios:\n  s: {title: A, messages: 1, thresholds: {min_throughput: 1.5e4}}\n",
     "or write the number out: 15000"),
    ("scenarios:\n  s:\n    title: A\n    messages: [" + ", ".join(["9"] * 10_000) + "]\n",
     "key 'messages' is list [9, 9, 9, ...]; expected a whole number"),
    ("scenarios:\n  s: {title: A, messages: 1" + "0" * 5000 + "}\n",
     "a value cannot be read (Exceeds the limit (4300 digits)"),
    ("scenarios:\n  s: {title: A, messages: 1" + "0" * 30 + "}\n",
     "key 'messages' is 1000000000000000000000000000000; expected a whole number from 1 to"),
    ("scenarios:\n  s: {title: A, messages: 2024-13-45}\n", "a value cannot be read"),
    ("scenarios:\n  s: {title: A, messages: 2024-01-05}\n",
     "key 'messages' is date datetime.date(2024, 1, 5); expected a whole number"),
]


@pytest.mark.parametrize(("text", "expected"), HOSTILE_FILES)
def test_hostile_file_gets_one_short_line(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_scenarios(path)
    message = str(caught.value)
    assert message.startswith(f"{path}:")
    assert expected in message
    assert "\n" not in message
    assert len(message) < 400


def test_non_utf8_file_names_the_byte(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes("scenarios:\n  s: {title: Caf\xe9, messages: 1}\n".encode("latin-1"))
    with pytest.raises(ConfigError, match=r"latin1\.yaml: not UTF-8 text \(byte 0xe9 at "
                                          r"offset 27\); save the file as UTF-8$"):
        load_scenarios(path)


def test_alias_bomb_fails_fast_with_bounded_memory(tmp_path: Path) -> None:
    """In a child limited to 512 MB of address space: the unbounded loader needed 2.2 GB."""
    path = tmp_path / "bomb.yaml"
    path.write_text(ALIAS_BOMB, encoding="utf-8")
    assert len(ALIAS_BOMB.encode()) < 400
    code = (
        "import resource, sys, time\n"
        "resource.setrlimit(resource.RLIMIT_AS, (512 << 20, 512 << 20))\n"
        "from pathlib import Path\n"
        "from stress.config.scenarios import load_scenarios\n"
        "from stress.errors import ConfigError\n"
        "start = time.perf_counter()\n"
        "try:\n"
        "    load_scenarios(Path(sys.argv[1]))\n"
        "except ConfigError as exc:\n"
        "    print(f'{time.perf_counter() - start:.3f}', exc)\n"
    )
    done = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True,
                          text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    seconds, message = done.stdout.split(" ", 1)
    assert float(seconds) < 0.5
    assert "aliases expand to more than 10,000 values" in message


def test_small_aliases_and_merge_keys_still_work(tmp_path: Path) -> None:
    path = tmp_path / "anchors.yaml"
    path.write_text("limits: &limits {min_throughput: 5}\n"
                    "scenarios:\n"
                    "  a: {title: A, messages: 1, thresholds: *limits}\n"
                    "  b: {<<: {title: B, messages: 2}, messages: 3, thresholds: *limits}\n",
                    encoding="utf-8")
    with pytest.raises(ConfigError, match="unknown top-level key 'limits'"):
        load_scenarios(path)
    path.write_text("scenarios:\n"
                    "  a: &a {title: A, messages: 1, thresholds: {min_throughput: 5}}\n"
                    "  b: {<<: *a, title: B, messages: 3}\n", encoding="utf-8")
    scenarios = load_scenarios(path)
    assert scenarios["b"].messages == 3
    assert scenarios["b"].thresholds.min_throughput == 5


# -- Scenario.from_dict: the child's decoder is as strict as the file loader ----------------

def test_from_dict_round_trips_every_builtin() -> None:
    for scenario in load_scenarios().values():
        assert Scenario.from_dict(scenario.to_dict()) == scenario


@pytest.mark.parametrize(("change", "expected"), [
    ({"mesages": 5}, "unknown key 'mesages'; did you mean 'messages'?"),
    ({"messages": "5"}, "key 'messages' is '5'; expected a whole number >= 1"),
    ({"messages": 5.0}, "key 'messages' is 5.0; expected a whole number"),
    ({"timeout_s": float("nan")}, "key 'timeout_s' is nan; expected a finite number"),
    ({"name": "../etc"}, "the name may hold only letters"),
    ({"name": 7}, "the name is 7; names are text"),
    ({"thresholds": {"max_loss_pct": "1"}}, "key 'thresholds.max_loss_pct' is '1'"),
    ({"thresholds": [1]}, "key 'thresholds' must be a mapping, got list [1]"),
    ({"thresholds": {"max_los_pct": 1}}, "did you mean 'max_loss_pct'?"),
])
def test_from_dict_rejects_bad_data_with_scenario_error(
        change: dict[str, object], expected: str) -> None:
    data = {**load_scenarios()["short"].to_dict(), **change}
    with pytest.raises(ScenarioError) as caught:
        Scenario.from_dict(data)
    assert expected in str(caught.value)
    assert isinstance(caught.value, ConfigError)


def test_from_dict_needs_the_required_keys() -> None:
    with pytest.raises(ScenarioError, match="key 'messages' is missing"):
        Scenario.from_dict({"name": "s", "title": "T"})
    with pytest.raises(ScenarioError, match="expected a mapping"):
        Scenario.from_dict([1, 2])  # type: ignore[arg-type]


def test_field_tables_come_from_the_dataclass() -> None:
    assert set(INT_FIELDS) == {"messages", "message_size", "channel_buffer", "conversations",
                               "warmup_messages"}
    assert set(FLOAT_FIELDS) == {"token_delay_us", "consumer_delay_us", "error_rate",
                                 "timeout_s", "warmup_s", "scale"}


def test_zero_loss_limit_stays_valid(tmp_path: Path) -> None:
    path = tmp_path / "zero.yaml"
    path.write_text("scenarios:\n  s: {title: T, messages: 1, thresholds: {max_loss_pct: 0}}\n",
                    encoding="utf-8")
    assert load_scenarios(path)["s"].thresholds.max_loss_pct == 0.0


# -- extends: builtin, a file that changes only what it names -------------------------------

def test_extending_file_changes_only_what_it_names(tmp_path: Path) -> None:
    path = tmp_path / "mine.yaml"
    path.write_text("version: 1\nextends: builtin\nscenarios:\n"
                    "  short:\n    thresholds: {min_throughput: 2000, max_memory_growth_mb: null}\n"
                    "  backpressure:\n    consumer_delay_us: 50\n"
                    "    thresholds: {max_loss_pct: 0}\n"
                    "  soak: {title: Soak, messages: 5}\n", encoding="utf-8")
    builtin = load_scenarios()
    scenarios = load_scenarios(path)
    assert list(scenarios) == [*builtin, "soak"]
    short = scenarios["short"]
    assert short.thresholds.min_throughput == 2000
    assert short.thresholds.max_memory_growth_mb is None
    assert (short.messages, short.title) == (1_000_000, builtin["short"].title)
    backpressure = scenarios["backpressure"]
    assert backpressure.consumer_delay_us == 50
    assert backpressure.thresholds.max_loss_pct == 0.0
    assert backpressure.channel_buffer == builtin["backpressure"].channel_buffer
    for name in ("medium", "long", "rapid", "concurrent", "errors"):
        assert scenarios[name] == builtin[name]
    assert scenarios["soak"].messages == 5


def test_extending_file_without_scenarios_is_the_builtin_set(tmp_path: Path) -> None:
    path = tmp_path / "same.yaml"
    path.write_text("extends: builtin\n", encoding="utf-8")
    assert load_scenarios(path) == load_scenarios()


EXTENDING_BAD = [
    ("extends: builtins\n", "key 'extends' is 'builtins'; expected 'builtin'"),
    ("extend: builtin\nscenarios: {}\n", "unknown top-level key 'extend'; did you mean 'extends'?"),
    ("extends: builtin\nscenarios:\n  shrot: {thresholds: {min_throughput: 1}}\n",
     "scenario 'shrot': no such scenario to change; did you mean 'short'?"),
    ("extends: builtin\nscenarios:\n  short: {thresholds: {min_throughput: -1}}\n",
     "scenario 'short': key 'thresholds.min_throughput' is -1; expected a number >= 0"),
    ("extends: builtin\nscenarios:\n  short: {thresholds: {min_thruput: 1}}\n",
     "scenario 'short': thresholds: unknown key 'min_thruput'; did you mean 'min_throughput'?"),
    ("extends: builtin\nscenarios:\n  short: {mesages: 1}\n",
     "scenario 'short': unknown key 'mesages'; did you mean 'messages'?"),
    ("extends: builtin\nscenarios:\n  short: {thresholds: 5}\n",
     "key 'thresholds' must be a mapping, got 5"),
    ("extends: builtin\nscenarios:\n  short: {}\n  short: {}\n", "key 'short' appears twice"),
    ("extends: builtin\nscenarios:\n  new: {messages: 5}\n", "key 'title' is missing"),
]


@pytest.mark.parametrize(("text", "expected"), EXTENDING_BAD)
def test_bad_extending_file_names_file_key_and_fix(
        tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "ext.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_scenarios(path)
    assert str(caught.value).startswith(f"{path}:")
    assert expected in str(caught.value)
    assert "\n" not in str(caught.value)


def test_overrides_leave_the_base_unchanged() -> None:
    base = load_scenarios()
    changed = apply_overrides(base, {"short": {"messages": 10}}, source="x")
    assert changed["short"].messages == 10
    assert base["short"].messages == 1_000_000
