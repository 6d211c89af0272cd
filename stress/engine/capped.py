"""The target's output in the scenario log, capped: its first and last part kept, the cut said.

A target printing 100 MB must not leave a 200 MB log. The child writes straight into the log
(the stack dumps of a hang are read back from it while the child runs); once the child has
exited, the part of the log it wrote is cut in the middle when it is over the cap: the first
``head_bytes`` and the last ``tail_bytes`` stay, with one line saying how much went. The tail
is what matters in a hang: the stack dumps come last.
"""

from __future__ import annotations

import os
from typing import TextIO

HEAD_BYTES = 2 * 1024 * 1024
TAIL_BYTES = 2 * 1024 * 1024
ALIGN_BYTES = 4096  # how far the cut looks for a line start, so no line is cut in two


def cap_section(log_file: TextIO, start: int, *, head_bytes: int = HEAD_BYTES,
                tail_bytes: int = TAIL_BYTES) -> int:
    """Cut the middle out of what ``log_file`` got since byte ``start``; returns bytes cut.

    ``log_file`` is the open log (the parent's handle; the child has exited). It is left
    positioned at its new end, so the caller's next write appends.
    """
    log_file.flush()
    fd = log_file.fileno()
    end = os.fstat(fd).st_size
    if end - start <= head_bytes + tail_bytes:
        return 0
    cut_from = start + head_bytes
    head_end = os.pread(fd, ALIGN_BYTES, cut_from)
    if (newline := head_end.find(b"\n")) >= 0:
        cut_from += newline + 1  # the head ends with a whole line
    tail_from = end - tail_bytes
    tail = os.pread(fd, tail_bytes, tail_from)
    if (newline := tail.find(b"\n", 0, ALIGN_BYTES)) >= 0:
        tail = tail[newline + 1:]  # the tail starts with a whole line
    cut = end - len(tail) - cut_from
    marker = (f"\n[... {cut:,} bytes of the scenario's output cut here: the log keeps the "
              f"first and the last part ...]\n").encode()
    os.pwrite(fd, marker + tail, cut_from)
    os.ftruncate(fd, cut_from + len(marker) + len(tail))
    log_file.seek(0, os.SEEK_END)
    return cut
