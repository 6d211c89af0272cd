"""Where a run happened: interpreter, platform, commit, container, target and loop."""

from __future__ import annotations

import os
import platform
import subprocess

from stress.results import Environment


def environment(*, target: str, loop: str) -> Environment:
    return Environment(
        python=platform.python_version(),
        implementation=platform.python_implementation(),
        platform=platform.platform(),
        cpu_count=os.cpu_count() or 1,
        git_sha=_git_sha(),
        # Only the image says so: some hosts carry a stray /.dockerenv, so it proves nothing.
        in_container=os.environ.get("STRESS_IN_CONTAINER") == "1",
        target=target,
        loop=loop,
    )


def _git_sha() -> str | None:
    for variable in ("STRESS_GIT_SHA", "GITHUB_SHA"):
        if os.environ.get(variable):
            return os.environ[variable]
    try:
        done = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                              timeout=5, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if done.returncode != 0:
        return None
    return done.stdout.strip() or None
