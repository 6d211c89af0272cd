"""Check a target in a throwaway interpreter: ``python -m stress.engine.check_target MODULE:ATTR``.

Importing the code under test runs it: an exception, a ``sys.exit()`` or an ``os._exit()`` at
import must end in a one-line error (exit 2), not take the runner with it. This child imports
the target and resolves its factory; exit 0 means it can be run, anything else is the reason
on the last line of stderr.
"""

from __future__ import annotations

import logging
import subprocess
import sys
import traceback

from stress.errors import ConfigError
from stress.process import child_environment

log = logging.getLogger("stress.engine.check_target")

CHECK_TIMEOUT_S = 120.0
OK = 0
BAD = 2
# Printed last when the target loaded: an os._exit(0) at import exits 0 without it.
LOADED = "stress: the target loads"


def main(argv: list[str]) -> int:
    from stress.engine.teardown import die_with_parent
    from stress.target import load_target

    die_with_parent()  # a runner killed while the target imports leaves no check behind
    if len(argv) != 1:
        print("usage: python -m stress.engine.check_target MODULE:ATTR", file=sys.stderr)
        return BAD
    spec = argv[0]
    try:
        load_target(spec)
    except ConfigError as exc:
        print(f"{exc}", file=sys.stderr)
        return BAD
    except SystemExit as exc:
        print(f"--target {spec!r}: importing it called sys.exit({exc.code!r}); a target module "
              "must not exit at import", file=sys.stderr)
        return BAD
    except BaseException as exc:  # the target's own code raised while it was imported
        traceback.print_exc()
        last = traceback.format_exception_only(exc)[-1].strip()
        print(f"--target {spec!r}: importing it raised {last}", file=sys.stderr)
        return BAD
    print(f"\n{LOADED}", flush=True)
    return OK


def check_target(spec: str, *, timeout_s: float = CHECK_TIMEOUT_S) -> None:
    """Raise ConfigError (exit 2) with the check child's last line unless ``spec`` loads."""
    argv = [sys.executable, "-m", "stress.engine.check_target", spec]
    try:
        done = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              errors="replace", timeout=timeout_s, check=False,
                              env=child_environment(quiet_ci=True))
    except subprocess.TimeoutExpired as exc:
        raise ConfigError(f"--target {spec!r}: importing it took over {timeout_s:.0f}s") from exc
    log.debug("checking the target %s gave exit %d; its output:\n%s%s", spec, done.returncode,
              done.stdout, done.stderr)
    if done.returncode == OK and (done.stdout or "").rstrip().endswith(LOADED):
        return
    lines = [line.strip() for line in (done.stderr or "").splitlines() if line.strip()]
    if done.returncode == BAD and lines:
        raise ConfigError(lines[-1])
    why = lines[-1] if lines else "no output"
    raise ConfigError(f"--target {spec!r}: importing it ended the interpreter "
                      f"(exit {done.returncode}): {why}")


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
