"""Writing into a results folder: whole files only, never through a link planted there.

The folder can be written by the code under test (a container run mounts it), so a name in it
may already be a symlink to a file elsewhere. ``write_file_atomically`` (a report, a profile)
and ``copy_file_atomically`` (merge) write a temporary file beside the target and rename it over
the target: the rename replaces a link instead of writing through it, and readers see the old
file or the new one, never half of one. ``open_new_text_file`` is for a file streamed while a
run goes (a log), and ``bounded_name`` keeps a name derived from a scenario name within what
the filesystem allows. ``cut_middle`` cuts a log to its first and last part (a flood, or a
full disk: ``shrink_log``).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import io
import os
import secrets
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from _typeshed import ReadableBuffer

# Most filesystems allow 255 bytes per name; leave room for the temporary file's affixes.
MAX_NAME_BYTES = 200
FULL_DISK = frozenset({errno.ENOSPC, errno.EDQUOT})
# Starts each note on what a full disk cost (profiles, a log's middle, the runner's lines), so
# every report can list them together.
DROPPED_NOTE = "Dropped:"
ALIGN_BYTES = 4096  # how far a cut looks for a line start, so no line is cut in two
MIN_CUT_BYTES = 2 * ALIGN_BYTES + 512  # more than both alignments and the marker line


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


class SpaceTolerantFile(io.FileIO):
    """A log's raw file: what the disk has no room for is counted and dropped, not raised.

    A full disk must not end a scenario that is being measured: the runner's notes in the log
    are worth less than the run's figures, and the reports make room afterwards
    (report/folder.py cuts the logs when results.json does not fit)."""

    dropped_bytes = 0

    def write(self, data: ReadableBuffer) -> int:
        view = memoryview(data).cast("B")
        done = 0
        try:
            while done < len(view):  # all of it, or up to the full disk
                done += super().write(view[done:]) or 0
        except OSError as exc:
            if exc.errno not in FULL_DISK:
                raise
            self.dropped_bytes += len(view) - done
        return len(view)  # as if written: a buffer above must not keep retrying it


class LogFile(io.TextIOWrapper):
    """The text file ``open_new_text_file`` gives: ``dropped_bytes`` is what a full disk cost;
    closed, it is under its name again if something replaced that meanwhile."""

    @property
    def dropped_bytes(self) -> int:
        raw = self.buffer.raw  # type: ignore[attr-defined]
        return raw.dropped_bytes if isinstance(raw, SpaceTolerantFile) else 0

    def close(self) -> None:
        if not self.closed:
            with contextlib.suppress(OSError):  # a full disk: the name keeps what it has
                self._reclaim_name()
        super().close()

    def _reclaim_name(self) -> None:
        """The code under test can replace the log's name while it is written (a link, say):
        the log goes back under its name, the way every artifact is written."""
        self.flush()
        fd = self.fileno()
        mine = os.fstat(fd)
        path = Path(self.name)
        try:
            there = os.stat(path, follow_symlinks=False)
            if (there.st_dev, there.st_ino) == (mine.st_dev, mine.st_ino):
                return
        except FileNotFoundError:
            pass
        write_file_atomically(path, os.pread(fd, mine.st_size, 0))


def open_new_binary_file(path: Path, *, readable: bool = False) -> SpaceTolerantFile:
    """``open_new_text_file``'s unbuffered binary file (a stream copied as it comes)."""
    if path.is_symlink():
        path.unlink()

    def no_follow(name: str, flags: int) -> int:
        return os.open(name, flags | getattr(os, "O_NOFOLLOW", 0), 0o666)

    return SpaceTolerantFile(path, "w+" if readable else "w", opener=no_follow)


def open_new_text_file(path: Path) -> LogFile:
    """A file to stream into (a log), created afresh: a link at ``path`` is removed, not
    followed, and one planted again in between makes the open fail instead of writing through.
    What a full disk has no room for is dropped and counted (``dropped_bytes``)."""
    # Keeps its name (a stack dump is read back from it), and readable, so a flood can be
    # cut out of its middle afterwards (engine/capped.py).
    raw = open_new_binary_file(path, readable=True)
    try:
        return LogFile(io.BufferedRandom(raw), encoding="utf-8", newline="\n")
    except BaseException:
        raw.close()
        raise


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


def shrink_log(path: Path, *, keep_bytes: int, why: str) -> int:
    """Cut a finished log (never through a link) to about its first and last ``keep_bytes``;
    returns bytes cut. For a full disk: the cut rewrites only bytes the file already holds,
    so it needs no room, and frees the rest."""
    flags = os.O_RDWR | getattr(os, "O_NOFOLLOW", 0)
    fd = os.open(path, flags)
    try:
        return cut_middle(fd, 0, keep_bytes, keep_bytes, f"of this log cut here: {why}")
    finally:
        os.close(fd)


def cut_middle(fd: int, start: int, head_bytes: int, tail_bytes: int, why: str) -> int:
    """Cut what ``fd`` holds after ``start`` to its first ``head_bytes`` and last
    ``tail_bytes``, whole lines, with one line saying how much went and ``why``."""
    end = os.fstat(fd).st_size
    if end - start <= head_bytes + tail_bytes + MIN_CUT_BYTES:
        return 0  # a cut this small would not pay for its own line
    cut_from = start + head_bytes
    head_end = os.pread(fd, ALIGN_BYTES, cut_from)
    if (newline := head_end.find(b"\n")) >= 0:
        cut_from += newline + 1  # the head ends with a whole line
    tail_from = end - tail_bytes
    tail = os.pread(fd, tail_bytes, tail_from)
    if (newline := tail.find(b"\n", 0, ALIGN_BYTES)) >= 0:
        tail = tail[newline + 1:]  # the tail starts with a whole line
    cut = end - len(tail) - cut_from
    marker = f"\n[... {cut:,} bytes {why} ...]\n".encode()
    # Written over the middle, so the file never grows: cut is at least MIN_CUT_BYTES minus
    # the two alignments' slack, more than any marker.
    os.pwrite(fd, marker + tail, cut_from)
    os.ftruncate(fd, cut_from + len(marker) + len(tail))
    return cut


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
