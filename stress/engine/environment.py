"""Where a run happened: interpreter, platform, commit, container, target and loop."""

from __future__ import annotations

import os
import platform
import subprocess
import tomllib

import stress
from stress.results import Environment
from stress.verifier_build import verifier_build


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
        # The container session sets these (it built the project into the image).
        project_name=os.environ.get("STRESS_PROJECT_NAME") or _pyproject("name"),
        project_version=os.environ.get("STRESS_PROJECT_VERSION") or _pyproject("version"),
        kit_version=os.environ.get("STRESS_KIT_VERSION") or stress.__version__,
        image_id=os.environ.get("STRESS_IMAGE_ID") or None,
        verifier=verifier_build(),
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


def _pyproject(field: str) -> str | None:
    """A static [project] field of the pyproject in the working folder (a host run there)."""
    try:
        with open("pyproject.toml", "rb") as handle:
            value = tomllib.load(handle).get("project", {}).get(field)
    except (OSError, tomllib.TOMLDecodeError, AttributeError):
        return None
    return value if isinstance(value, str) else None
