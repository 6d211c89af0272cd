"""CI-aware output: log groups and error annotations on GitHub Actions, plain text elsewhere."""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

log = logging.getLogger("stress")


def on_github_actions() -> bool:
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
    """Fold the output inside into a collapsible group on GitHub Actions; time it."""
    started = time.perf_counter()
    if on_github_actions():
        print(f"::group::{title}", flush=True)
    else:
        print(f"--- {title}", flush=True)
    try:
        yield
    finally:
        if on_github_actions():
            print("::endgroup::", flush=True)
        log.debug("%s took %.1fs", title, time.perf_counter() - started)


def annotate_error(title: str, message: str) -> None:
    """An error annotation on GitHub Actions (shown on the run page); nothing elsewhere."""
    if on_github_actions():
        escaped = message.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
        print(f"::error title={title}::{escaped}", flush=True)


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
