"""``stress-kit config``: the resolved options and where each came from."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from stress.config.settings import Settings, resolve_settings, to_json

HELP = ("print the resolved options (defaults < [tool.stress] or stress.toml < STRESS_* "
        "variables < flags) and where each came from")


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true",
                        help="a JSON object: config_file, settings (value and origin), scenarios")


def run(args: argparse.Namespace) -> int:
    settings = resolve_settings({}, Path.cwd(), os.environ)
    if args.json:
        print(json.dumps(to_json(settings), indent=2))
    else:
        print(render(settings), end="")
    return 0


def render(settings: Settings) -> str:
    lines = [f"config file: {settings.config_file or 'none found'}", ""]
    items = [(name, _show(name, item.value), item.origin) for name, item in settings.items()]
    width = max(len(name) for name, _, _ in items)
    value_width = min(40, max(len(value) for _, value, _ in items))
    lines += [f"{name:<{width}}  {value:<{value_width}}  ({origin})"
              for name, value, origin in items]
    lines += ["", "scenarios:"]
    name_width = max(len(s.name) for s in settings.scenarios)
    for scenario, origin in zip(settings.scenarios, settings.scenario_origins, strict=True):
        limits = ", ".join(f"{key}={value:g}" for key, value in vars(scenario.thresholds).items()
                           if value is not None) or "no limits"
        lines.append(f"  {scenario.name:<{name_width}}  {limits}  ({origin})")
    return "\n".join(lines) + "\n"


def _show(name: str, value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, tuple):
        if not value:
            return "(none)" if name == "profile" else "(all)"
        return ",".join(map(str, value))
    return str(value)
