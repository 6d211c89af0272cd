"""Which commit the workflow `stress-kit init` writes runs the kit's action at.

A security review (zizmor's unpinned-uses) accepts a third-party action only pinned by a full
commit SHA, so init pins it, the version beside, and says where the commit came from:

1. ``--action-ref SHA``: that commit.
2. The commit the installed kit was built from, which its PEP 610 record (``direct_url.json``)
   names: ``vcs_info.commit_id`` for an install from a git URL (``pip install
   git+https://github.com/OWNER/REPO@v1``, whose OWNER/REPO then names the action too), or
   the HEAD of the clean checkout it was installed from (``pip install ./asyncio-stress-kit``).
3. The commit the version's tag (or ``--action-ref TAG``) names in the action's repository,
   asked with ``git ls-remote``, as a pinning tool would.
4. Else the tag itself, with a note saying what zizmor will ask and the command that fixes it.

Nothing is guessed: a checkout with changes, or a wheel, has no commit of its own.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from urllib.parse import unquote, urlparse

from stress import __version__

DISTRIBUTION = "asyncio-stress-kit"
# The kit's action, as a project's workflow names it when the install does not say otherwise.
KIT_ACTION = "asyncio-stress-kit/asyncio-stress-kit"
VERSION_TAG = f"v{__version__}"
LS_REMOTE_TIMEOUT_S = 15.0

SHA = re.compile(r"[0-9a-f]{40}")
_GITHUB = re.compile(r"(?:git\+)?(?:https://|ssh://git@|git@)github\.com[/:]"
                     r"([A-Za-z0-9][A-Za-z0-9-]*/[A-Za-z0-9._-]+?)(?:\.git)?/?(?:@.*)?$")


@dataclass(frozen=True, kw_only=True)
class ActionPin:
    """What the workflow's ``uses:`` line says: ``action@ref # version``."""

    action: str  # OWNER/REPO
    ref: str  # a full commit SHA, or a tag when no commit was found
    source: str  # where the commit came from, or why there is none: for init's note

    @property
    def pinned(self) -> bool:
        return SHA.fullmatch(self.ref) is not None

    @property
    def uses(self) -> str:
        return f"{self.action}@{self.ref} # {VERSION_TAG}" if self.pinned else \
            f"{self.action}@{self.ref}"


def resolve(action_ref: str | None, *,
            distribution: metadata.Distribution | None = None) -> ActionPin:
    """The pin for the workflow; ``distribution`` is the installed kit's (found when None)."""
    installed = installed_commit(distribution if distribution is not None
                                 else _installed_kit())
    repository = installed.action if installed is not None else KIT_ACTION
    if action_ref is not None and SHA.fullmatch(action_ref):
        return ActionPin(action=repository, ref=action_ref,
                         source="the commit --action-ref gives")
    if action_ref is None and installed is not None:
        return installed
    tag = action_ref or VERSION_TAG
    commit, reason = tag_commit(f"https://github.com/{repository}", tag)
    if commit is not None:
        return ActionPin(action=repository, ref=commit,
                         source=f"the commit tag {tag} names in github.com/{repository}")
    return ActionPin(action=repository, ref=tag, source=reason)


def _installed_kit() -> metadata.Distribution | None:
    try:
        found = metadata.distribution(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        return None  # run from a source tree: no install record
    # Another copy of the kit installed beside the one running says nothing about this one.
    return found if found.version == __version__ else None


def installed_commit(distribution: metadata.Distribution | None) -> ActionPin | None:
    """The commit PEP 610's record says the installed kit came from, if it names one."""
    if distribution is None:
        return None
    try:
        record = json.loads(distribution.read_text("direct_url.json") or "null")
    except ValueError:
        return None
    if not isinstance(record, dict) or not isinstance(record.get("url"), str):
        return None  # installed from an index: no record
    url: str = record["url"]
    vcs = record.get("vcs_info")
    if isinstance(vcs, dict) and vcs.get("vcs") == "git" \
            and SHA.fullmatch(str(vcs.get("commit_id", ""))):
        return ActionPin(action=_github_repository(url) or KIT_ACTION, ref=vcs["commit_id"],
                         source=f"the commit the kit was installed from ({url})")
    if isinstance(record.get("dir_info"), dict) and url.startswith("file://"):
        return _checkout_commit(Path(unquote(urlparse(url).path)))
    return None  # a wheel or an archive: it does not say which commit it was built from


def _checkout_commit(folder: Path) -> ActionPin | None:
    """HEAD of the checkout the kit was installed from, when its files are that commit's."""
    if not (folder / "action.yml").is_file():
        return None  # not a checkout of the kit's repository: no action of its own there
    head = _git(folder, "rev-parse", "--verify", "HEAD")
    status = _git(folder, "status", "--porcelain", "--untracked-files=no")
    if head is None or not SHA.fullmatch(head) or status is None or status:
        return None  # not a git checkout, or one with changes: no commit holds what is installed
    origin = _git(folder, "remote", "get-url", "origin") or ""
    return ActionPin(action=_github_repository(origin) or KIT_ACTION, ref=head,
                     source=f"the commit of the checkout the kit was installed from ({folder})")


def tag_commit(repository_url: str, tag: str) -> tuple[str | None, str]:
    """The commit ``tag`` names in the repository (a tag object peeled), or why there is none."""
    command = ["git", "ls-remote", "--tags", repository_url, f"refs/tags/{tag}",
               f"refs/tags/{tag}^{{}}"]
    # No prompt: an unknown repository must fail, not ask for a password.
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "GIT_ASKPASS": "true"}
    try:
        done = subprocess.run(command, capture_output=True, text=True, env=env,
                              stdin=subprocess.DEVNULL, timeout=LS_REMOTE_TIMEOUT_S, check=False)
    except FileNotFoundError:
        return None, "git is not installed, so the tag could not be turned into a commit"
    except subprocess.TimeoutExpired:
        return None, (f"git ls-remote {repository_url} gave no answer in "
                      f"{LS_REMOTE_TIMEOUT_S:.0f}s")
    refs: dict[str, str] = {}
    for line in done.stdout.splitlines():
        sha, _, ref = line.partition("\t")
        refs[ref] = sha
    commit = refs.get(f"refs/tags/{tag}^{{}}") or refs.get(f"refs/tags/{tag}", "")
    if done.returncode == 0 and SHA.fullmatch(commit):
        return commit, ""
    why = done.stderr.strip().splitlines()[-1] if done.stderr.strip() else \
        f"no tag {tag} there"
    return None, f"git ls-remote {repository_url} {tag}: {why}"


def _git(folder: Path, *args: str) -> str | None:
    try:
        done = subprocess.run(["git", "-C", str(folder), *args], capture_output=True, text=True,
                              stdin=subprocess.DEVNULL, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def _github_repository(url: str) -> str | None:
    match = _GITHUB.match(url)
    return match[1] if match else None
