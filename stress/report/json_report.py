"""results.json: the results document plus where and when the run happened."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime
from typing import Any

from stress.results import Result, results_document


def run_environment(results: list[Result]) -> dict[str, Any] | None:
    """The first scenario's environment; each scenario keeps its own (a merge may differ)."""
    for result in results:
        if result.environment is not None:
            return dataclasses.asdict(result.environment)
    return None


def render_json(results: list[Result], generated_at: datetime | None = None) -> str:
    document = results_document(results)
    document["environment"] = run_environment(results)
    document["generated_at"] = (generated_at or datetime.now(UTC)).isoformat(timespec="seconds")
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"
