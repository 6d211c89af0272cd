"""The one CI-aware output: timed groups, annotations and the step summary on GitHub Actions.

Everywhere else the same calls print plain text. ``STRESS_CI_OUTPUT=0`` turns the GitHub
output off in a process that runs inside a job but must not write into its page (a child the
kit runs for its own measurements, a test).
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Literal

log = logging.getLogger("stress")

CI_OUTPUT_SWITCH = "STRESS_CI_OUTPUT"


def on_github_actions() -> bool:
    if os.environ.get(CI_OUTPUT_SWITCH) == "0":
        return False
    return os.environ.get("GITHUB_ACTIONS") == "true"


def configure_logging(verbose: bool) -> None:
    """``-v`` or ``STRESS_LOG=debug`` turns on debug logging (children inherit STRESS_LOG)."""
    if verbose:
        os.environ["STRESS_LOG"] = "debug"
    level_name = os.environ.get("STRESS_LOG", "info").upper()
    level = getattr(logging, level_name, logging.INFO)
    logging.basicConfig(level=level, stream=sys.stderr,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")


@contextmanager
def group(title: str) -> Iterator[None]:
    """A timed step, folded into a collapsible group on GitHub Actions; its time is printed."""
    started = time.perf_counter()
    github = on_github_actions()
    print(f"::group::{title}" if github else f"--- {title}", flush=True)
    try:
        yield
    finally:
        if github:
            print("::endgroup::", flush=True)
        print(f"--- {title}: {time.perf_counter() - started:.1f}s", flush=True)


def _escape(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def annotate(kind: Literal["error", "warning"], title: str, message: str) -> None:
    """An annotation on the run page on GitHub Actions; nothing elsewhere."""
    if on_github_actions():
        print(f"::{kind} title={_escape(title)}::{_escape(message)}", flush=True)


def annotate_error(title: str, message: str) -> None:
    annotate("error", title, message)


def warning(message: str) -> None:
    """A warning for the reader: an annotation on GitHub Actions, a WARNING line elsewhere."""
    if on_github_actions():
        print(f"::warning::{_escape(message)}", file=sys.stderr, flush=True)
    else:
        print(f"WARNING: {message}", file=sys.stderr, flush=True)


def append_step_summary(markdown: str) -> bool:
    """Append to the job's summary page on GitHub Actions; False where there is none."""
    path = os.environ.get("GITHUB_STEP_SUMMARY")
    if not path or not on_github_actions():
        return False
    try:
        with open(path, "a", encoding="utf-8") as handle:
            handle.write(markdown.rstrip("\n") + "\n")
    except OSError as exc:  # the step summary is a courtesy; the reports are written
        log.warning("could not append to $GITHUB_STEP_SUMMARY (%s): %s", path, exc)
        return False
    return True


@contextmanager
def quiet_log(title: str) -> Iterator[list[str]]:
    """Collect a noisy tool's output; show it (folded on GitHub Actions) only if it fails."""
    lines: list[str] = []
    try:
        yield lines
    except KeyboardInterrupt:
        raise  # the user stopped it: the tool did not fail, its log says nothing they need
    except BaseException:
        github = on_github_actions()
        print(f"::group::{title} (log)" if github else f"--- {title}: log", file=sys.stderr,
              flush=True)
        sys.stderr.write("".join(lines))
        if github:
            print("::endgroup::", file=sys.stderr, flush=True)
        sys.stderr.flush()
        raise


class Progress:
    """A live line on a terminal; a plain line every few seconds in CI logs."""

    def __init__(self, interval_s: float = 10.0) -> None:
        self._live = sys.stdout.isatty() and not on_github_actions()
        self._interval_s = interval_s
        self._last = time.monotonic()
        self._shown = False

    def update(self, text: str) -> None:
        now = time.monotonic()
        if self._live:
            sys.stdout.write("\r\x1b[2K" + text)
            sys.stdout.flush()
            self._shown = True
        elif now - self._last >= self._interval_s:
            print(text, flush=True)
            self._last = now

    def clear(self) -> None:
        if self._live and self._shown:
            sys.stdout.write("\r\x1b[2K")
            sys.stdout.flush()
            self._shown = False
