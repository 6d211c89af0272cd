"""Who owns the results, and which session a container belongs to (so a dead one's is reaped).

No docker here: the driver asks the engine, these answer from the host's side.
"""

from __future__ import annotations

import contextlib
import os
import socket
from pathlib import Path


def user_ids(user: str) -> tuple[int, int]:
    uid, _, gid = user.partition(":")
    return int(uid), int(gid or uid)


def results_owner(folder: Path) -> tuple[int, int]:
    """Who owns the results folder now (it exists): whom its files go back to."""
    info = folder.stat()
    return info.st_uid, info.st_gid


def give_tree(folder: Path, uid: int, gid: int) -> None:
    """Change the owner of `folder` and everything in it, never following a link: a planted
    link must not hand a file outside the folder to anyone."""
    if not hasattr(os, "lchown"):
        return
    os.lchown(folder, uid, gid)
    for root, dirs, files in os.walk(folder):
        for name in (*dirs, *files):
            with contextlib.suppress(FileNotFoundError):
                os.lchown(os.path.join(root, name), uid, gid)


def session_id(pid: int | None = None) -> str:
    """host:pid:start-time of a process: a pid reused by another process does not match."""
    import psutil

    pid = os.getpid() if pid is None else pid
    return f"{socket.gethostname()}:{pid}:{psutil.Process(pid).create_time():.2f}"


def alive(session: str) -> bool:
    import psutil

    host, _, rest = session.partition(":")
    pid_text, _, start = rest.partition(":")
    if host != socket.gethostname() or not pid_text.isdigit():
        return True  # another machine's session: not ours to judge
    try:
        return f"{psutil.Process(int(pid_text)).create_time():.2f}" == start
    except psutil.Error:
        return False
