"""Reading results back: a results.json (or the folder holding one) or the seed's text blocks.

Every reader of results goes through here: ``compare``, ``report``, ``merge`` and ``--baseline``.
A text log is stdout of a run or a stress-test-<name>.log, with the blocks report/text.py
writes (headed ``=== Stress Test Results: TITLE ===``); the seed's own ``tee``'d logs read the
same way. Its labels come from report/labels.py, shared with the writer.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stress.config.scenario import Scenario
from stress.errors import ConfigError
from stress.report import labels
from stress.results import Metrics, Result, Status, parse_results_document

_HEADER = re.compile(rf"^\s*{re.escape(labels.HEADER_PREFIX)}(?P<title>.+?)"
                     rf"{re.escape(labels.HEADER_SUFFIX)}\s*$")
_LOG_HEADER = re.compile(rf"^{re.escape(labels.LOG_HEADER_PREFIX)}(?P<name>\S+) \(")
_FIELD = re.compile(r"^\s+(?P<key>[A-Za-z][A-Za-z ]*?):\s*(?P<value>\S.*?)\s*$")
_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?")

# Block line -> (where it goes, field). "scenario" fields build the Scenario, "metric" ones
# the Metrics; the seed's "Total messages received" has no counterpart and is ignored.
_FIELDS: dict[str, tuple[str, str]] = {label.lower(): target for label, target in (
    (labels.MESSAGES, ("scenario", "messages")),
    (labels.MESSAGE_SIZE, ("scenario", "message_size")),
    (labels.TOKEN_DELAY, ("scenario", "token_delay_us")),
    (labels.CHANNEL_BUFFER, ("scenario", "channel_buffer")),
    (labels.CONSUMER_DELAY, ("scenario", "consumer_delay_us")),
    (labels.CONVERSATIONS, ("scenario", "conversations")),
    (labels.ERROR_RATE, ("scenario", "error_rate")),
    (labels.TOTAL_TOKENS, ("metric", "tokens_received")),
    (labels.TOKENS_BY_CONSUMER, ("metric", "tokens_received")),
    (labels.MESSAGES_SENT, ("metric", "messages_sent")),
    (labels.STREAMS_COMPLETED, ("metric", "streams_completed")),
    (labels.ERRORS, ("metric", "errors")),
    (labels.DURATION, ("metric", "duration_s")),
    (labels.THROUGHPUT, ("metric", "throughput")),
    (labels.MEMORY_GROWTH, ("metric", "memory_growth_mb")),
    (labels.QUIT_LATENCY, ("metric", "quit_latency_ms")),
    (labels.MESSAGE_LOSS, ("metric", "loss_pct")),
    (labels.LEAKED_AT_EXIT, ("metric", "leaked_mb")),
    (labels.INSTRUCTIONS_PER_TOKEN, ("metric", "instructions_per_token")),
)}
_INTEGER_FIELDS = {"messages", "message_size", "channel_buffer", "conversations",
                   "tokens_received", "messages_sent", "streams_completed", "errors"}


def slug(title: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-") or "scenario"


@dataclass
class _Block:
    title: str
    name: str | None
    scenario: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    passed: bool = False
    headlines: list[str] = field(default_factory=list)

    def add(self, line: str) -> None:
        stripped = line.strip()
        if stripped.startswith(labels.PASSED):
            self.passed = True
        elif stripped.startswith(labels.FAILURE_PREFIX):
            self.headlines.append(stripped)
        match = _FIELD.match(line)
        if not match or match["key"].lower() not in _FIELDS:
            return
        if match["value"].startswith(labels.NOT_MEASURED):
            # "Quit latency: not measured", or a hung run's "Message loss: not measured (...;
            # 15430 sent but not yet received)": the figure in it is not the metric.
            return
        figure = _NUMBER.search(match["value"])
        if figure is None:
            return
        where, name = _FIELDS[match["key"].lower()]
        value: float | int = float(figure[0].replace(",", ""))
        if name == "error_rate":
            value /= 100
        if name in _INTEGER_FIELDS:
            value = round(value)
        (self.scenario if where == "scenario" else self.metrics)[name] = value

    def result(self) -> Result:
        metrics = dict(self.metrics)
        duration = float(metrics.get("duration_s", 0.0))
        if "throughput" not in metrics and duration > 0:
            # A backpressure block shows counts and duration but no throughput line.
            metrics["throughput"] = metrics.get("tokens_received", 0) / duration
        status: Status = "passed" if self.passed and not self.headlines else "failed"
        for headline in self.headlines:
            status = labels.UNFINISHED_HEADLINES.get(headline, status)
        scenario = Scenario(name=self.name or slug(self.title), title=self.title,
                            **{"messages": 0, **self.scenario})
        return Result(scenario=scenario, status=status, metrics=Metrics(**metrics))


def parse_blocks(text: str) -> list[Result]:
    """Every seed-format block in captured text, as Results holding what the blocks show."""
    blocks: list[_Block] = []
    pending_name: str | None = None
    for line in text.splitlines():
        if header := _LOG_HEADER.match(line):
            pending_name = header["name"]
        elif header := _HEADER.match(line):
            blocks.append(_Block(title=header["title"], name=pending_name))
            pending_name = None
        elif blocks:
            blocks[-1].add(line)
    return [block.result() for block in blocks]


def _read_text(source: Path) -> str:
    try:
        return source.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{source}: no such file; expected a results.json or the text log "
                          "of a stress run") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{source}: cannot be read ({exc}); expected a results.json or "
                          "the text log of a stress run") from None


def read_results(path: Path) -> list[Result]:
    """Results from a results.json, a folder holding one, or a text log; ConfigError if not."""
    source = path / "results.json" if path.is_dir() else path
    text = _read_text(source)
    if text.lstrip().startswith("{"):
        return _results_from_json(source, text)
    results = parse_blocks(text)
    if not results:
        raise ConfigError(f"{source}: no '{labels.header('TITLE')}' block found; "
                          "expected a results.json or the text log of a stress run")
    # A log appended to by several runs (`tee -a`) holds a scenario more than once: the
    # latest block is the one that counts.
    latest = {(r.scenario.name, r.scenario.title): r for r in results}
    return list(latest.values())


def read_results_json(path: Path) -> list[Result]:
    """Results from a results.json only (what report and merge rebuild everything from)."""
    return _results_from_json(path, _read_text(path))


def _results_from_json(source: Path, text: str) -> list[Result]:
    try:
        data = json.loads(text)
        if not isinstance(data, dict) or "scenarios" not in data:
            raise ValueError("no 'scenarios' key")
        return parse_results_document(data)
    except (ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"{source}: not a stress results.json ({exc}); pass the "
                          "results.json a `python -m stress run` wrote") from None
