"""Writing into a results folder: whole files only, never through a link planted there.

The folder can be written by the code under test (a container run mounts it), so a name in it
may already be a symlink to a file elsewhere. ``write_file_atomically`` (a report, a profile)
and ``copy_file_atomically`` (merge) write a temporary file beside the target and rename it over
the target: the rename replaces a link instead of writing through it, and readers see the old
file or the new one, never half of one. ``open_new_text_file`` is for a file streamed while a
run goes (a log), and ``bounded_name`` keeps a name derived from a scenario name within what
the filesystem allows.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import shutil
from pathlib import Path
from typing import TextIO

# Most filesystems allow 255 bytes per name; leave room for the temporary file's affixes.
MAX_NAME_BYTES = 200


def write_file_atomically(path: Path, data: str | bytes) -> None:
    """Write beside ``path``, then rename over it; the temporary file never outlives a failure."""
    # A plain exclusive create (not mkstemp) so the file gets the usual umask permissions, not
    # 0600; exclusive, so a link at the temporary name is an error, not followed.
    temp = path.with_name(f".{path.name[:MAX_NAME_BYTES]}.{os.getpid()}."
                          f"{secrets.token_hex(4)}.tmp")
    try:
        if isinstance(data, bytes):
            with temp.open("xb") as binary:
                binary.write(data)
        else:
            with temp.open("x", encoding="utf-8", newline="\n") as text:
                text.write(data)
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise


def open_new_text_file(path: Path) -> TextIO:
    """A file to stream into (a log), created afresh: a link at ``path`` is removed, not
    followed, and one planted again in between makes the open fail instead of writing through."""
    if path.is_symlink():
        path.unlink()

    def no_follow(name: str, flags: int) -> int:
        return os.open(name, flags | getattr(os, "O_NOFOLLOW", 0), 0o666)

    # Through open(), so the file keeps its name (a stack dump is read back from it), and
    # readable, so a flood can be cut out of its middle afterwards (engine/capped.py).
    return open(path, "w+", encoding="utf-8", newline="\n", opener=no_follow)


def copy_file_atomically(source: Path, target: Path) -> None:
    """Copy a regular file the same way: never through a link at ``target``, never a link's
    target at ``source`` (a link there could point at any file of the machine)."""
    if source.is_symlink() or not source.is_file():
        raise OSError(f"{source}: not a regular file")
    temp = target.with_name(f".{target.name[:MAX_NAME_BYTES]}.{os.getpid()}."
                            f"{secrets.token_hex(4)}.tmp")
    try:
        flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0)
        with os.fdopen(os.open(source, flags), "rb") as reader, temp.open("xb") as writer:
            shutil.copyfileobj(reader, writer)
        shutil.copystat(source, temp)
        os.replace(temp, target)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise


def bounded_name(stem: str, suffix: str = "") -> str:
    """A file name from a scenario name that fits the filesystem: long stems are cut and given
    a hash of the whole, so two long names that share a start still get two files."""
    name = stem + suffix
    if len(name.encode()) <= MAX_NAME_BYTES:
        return name
    digest = hashlib.sha256(stem.encode()).hexdigest()[:12]
    room = MAX_NAME_BYTES - len(suffix.encode()) - len(digest) - 1
    cut = stem.encode()[:room].decode(errors="ignore")
    return f"{cut}-{digest}{suffix}"
