"""The records parent and child exchange: round trips, and clear errors for malformed ones."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from stress.config.scenarios import load_scenarios
from stress.engine.protocol import (
    ChildFigures,
    ChildSpec,
    ProtocolError,
    QuitFigures,
    RunFigures,
    Sample,
)
from stress.errors import EngineError

SHORT = load_scenarios()["short"]


def spec() -> ChildSpec:
    return ChildSpec(scenario=SHORT, target="stress.pipeline:reference", loop="asyncio",
                     samples_path=Path("/tmp/s.jsonl"), result_path=Path("/tmp/r.json"),
                     sample_interval_s=0.1, measure_quit=True)


def test_each_record_survives_its_round_trip() -> None:
    assert ChildSpec.from_json(spec().to_json()) == spec()
    sample = Sample(phase="quit", t=1.5, rss_mb=30.25, messages_sent=10, tokens_received=9,
                    streams_completed=0, errors=1)
    assert Sample.from_json(sample.to_json()) == sample
    figures = ChildFigures(
        run=RunFigures(duration_s=2.0, messages_sent=10, tokens_received=10,
                       streams_completed=1, errors=0, rss_start_mb=20.0, rss_end_mb=21.0,
                       peak_rss_mb=22.0),
        quit=QuitFigures(latency_ms=3.0, tokens_before=5, pending=("<Task pending>",)))
    assert ChildFigures.from_json(figures.to_json()) == figures
    crashed = ChildFigures(error="ValueError: x")
    assert ChildFigures.from_json(crashed.to_json()) == crashed
    assert not crashed.finished
    assert figures.finished


def test_one_spelling_of_the_counters_on_the_wire() -> None:
    sample = Sample(phase="run", t=0.0, rss_mb=1.0, messages_sent=1, tokens_received=2,
                    streams_completed=3, errors=4)
    assert set(json.loads(sample.to_json())) == {
        "version", "phase", "t", "rss_mb", "messages_sent", "tokens_received",
        "streams_completed", "errors", "verified"}


def _spec_with(**changes: object) -> str:
    data = json.loads(spec().to_json())
    for key, value in changes.items():
        where, _, field = key.rpartition("__")
        target = data["scenario"] if where == "scenario" else data
        if value is None:
            del target[field or key]
        else:
            target[field or key] = value
    return json.dumps(data)


@pytest.mark.parametrize(("changes", "error"), [
    ({"scenario__messages": "1000"}, "spec.scenario: 'messages' is '1000' (str), expected int"),
    ({"scenario__messages": True}, "spec.scenario: 'messages' is True (bool), expected int"),
    ({"scenario__timeout_s": None}, "spec.scenario: missing key 'timeout_s'"),
    ({"scenario__colour": "red"}, "spec.scenario: unknown key 'colour'"),
    ({"target": None}, "spec: missing key 'target'"),
    ({"loop": "trio"}, "spec: 'loop' is 'trio', expected one of asyncio, uvloop"),
    ({"measure_quit": 1}, "spec: 'measure_quit' is 1 (int), expected bool"),
    ({"version": 4}, "spec: protocol version 4, this kit speaks 3"),
])
def test_a_malformed_spec_names_the_key(changes: dict[str, object], error: str) -> None:
    with pytest.raises(ProtocolError) as raised:
        ChildSpec.from_json(_spec_with(**changes))
    assert str(raised.value) == error
    assert isinstance(raised.value, EngineError)


def test_an_int_is_a_float_but_a_float_is_no_int() -> None:
    data = json.loads(spec().to_json())
    data["scenario"]["timeout_s"] = 60
    assert ChildSpec.from_json(json.dumps(data)).scenario.timeout_s == 60.0
    line = json.loads(Sample(phase="run", t=0.0, rss_mb=1.0, messages_sent=1,
                             tokens_received=2, streams_completed=3, errors=4).to_json())
    line["tokens_received"] = 2.5
    with pytest.raises(ProtocolError, match=r"'tokens_received' is 2\.5 \(float\), expected int"):
        Sample.from_json(json.dumps(line))
    line["tokens_received"], line["phase"] = 2, "warmup"
    with pytest.raises(ProtocolError,
                       match="'phase' is 'warmup', expected one of start, setup, run"):
        Sample.from_json(json.dumps(line))


def test_malformed_figures_are_an_error() -> None:
    with pytest.raises(ProtocolError, match="figures: missing key 'run'"):
        ChildFigures.from_json('{"version": 3, "quit": null, "error": null}')
    with pytest.raises(ProtocolError, match="figures: not JSON"):
        ChildFigures.from_json("{")
    with pytest.raises(ProtocolError, match="'pending' must be a list of strings"):
        ChildFigures.from_json(json.dumps({"version": 3, "run": None, "error": None,
                                           "quit": {"latency_ms": 1.0, "note": None,
                                                    "tokens_before": 0, "pending": [1]}}))
