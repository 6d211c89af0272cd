"""The target's output in the scenario log, capped: its first and last part kept, the cut said.

A target printing 100 MB must not give a 200 MB log. The child's stdout and stderr go into a
pipe; a thread copies the first ``head_bytes`` straight into the log as they arrive (a live
log to follow) and keeps only the last ``tail_bytes`` after that, written when the pipe closes
with one line saying how much was cut in between. The tail is what matters in a hang: the
stack dump the child writes on SIGUSR1 comes last.
"""

from __future__ import annotations

import codecs
import os
import threading
from collections import deque
from typing import TextIO

HEAD_BYTES = 2 * 1024 * 1024
TAIL_BYTES = 2 * 1024 * 1024
CHUNK = 64 * 1024


class CappedCopy:
    """Copy a pipe's bytes into a text log, capped; ``start`` after spawn, ``close`` after exit."""

    def __init__(self, read_fd: int, log_file: TextIO, *, head_bytes: int = HEAD_BYTES,
                 tail_bytes: int = TAIL_BYTES) -> None:
        self._fd = read_fd
        self._log = log_file
        self._head_left = head_bytes
        self._tail_bytes = tail_bytes
        self._tail: deque[bytes] = deque()
        self._tail_size = 0
        self.cut_bytes = 0
        self.write_error: Exception | None = None
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._thread = threading.Thread(target=self._copy, name="child-output", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _write(self, data: bytes, final: bool = False) -> None:
        if self.write_error is not None:
            return
        try:
            self._log.write(self._decoder.decode(data, final))
            self._log.flush()
        except (OSError, ValueError) as exc:
            # A full disk: the output is dropped, but the pipe keeps being drained, or the
            # child would block (or fail) on its next print and the measurement with it.
            self.write_error = exc

    def _copy(self) -> None:
        try:
            while chunk := os.read(self._fd, CHUNK):
                if self._head_left > 0:
                    head, chunk = chunk[:self._head_left], chunk[self._head_left:]
                    self._head_left -= len(head)
                    self._write(head)
                if chunk:
                    self._keep_tail(chunk)
        except (OSError, ValueError):  # ValueError: the log was closed under a straggler
            pass
        finally:
            os.close(self._fd)

    def _keep_tail(self, chunk: bytes) -> None:
        self._tail.append(chunk)
        self._tail_size += len(chunk)
        while self._tail_size > self._tail_bytes:
            first = self._tail.popleft()
            excess = self._tail_size - self._tail_bytes
            if len(first) > excess:
                self._tail.appendleft(first[excess:])
            dropped = min(len(first), excess)
            self._tail_size -= dropped
            self.cut_bytes += dropped

    def close(self, timeout_s: float = 5.0) -> None:
        """Wait for the pipe to close (the child and anything holding its output exited), then
        write the kept tail. A grandchild still holding the pipe is not waited for past
        ``timeout_s``."""
        self._thread.join(timeout_s)
        tail = b"".join(self._tail)
        self._tail.clear()
        if self.cut_bytes:
            # Resume at a line start, so the tail does not begin with half a line.
            newline = tail.find(b"\n", 0, 4096)
            if newline >= 0:
                self.cut_bytes += newline + 1
                tail = tail[newline + 1:]
            self._decoder.reset()
            self._write(f"\n[... {self.cut_bytes:,} bytes of the scenario's output cut here: "
                        f"the log keeps the first and the last part ...]\n".encode())
        self._write(tail, final=True)
