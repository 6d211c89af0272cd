"""Scenario files: the built-in one matches the seed; bad files get one clear line."""

from __future__ import annotations

from pathlib import Path

import pytest

from stress.config import load_scenarios, parse_scenarios, select
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
