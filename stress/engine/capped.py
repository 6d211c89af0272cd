"""The target's output in the scenario log, capped: its first and last part kept, the cut said.

A target printing 100 MB must not leave a 200 MB log. The child writes straight into the log
(the stack dumps of a hang are read back from it while the child runs); once the child has
exited, the part of the log it wrote is cut in the middle when it is over the cap: the first
``head_bytes`` and the last ``tail_bytes`` stay, with one line saying how much went. The tail
is what matters in a hang: the stack dumps come last. The cut itself is report/files.py's
``cut_middle``, which also shrinks finished logs when the disk is full.
"""

from __future__ import annotations

import os
from typing import TextIO

from stress.report.files import cut_middle

HEAD_BYTES = 2 * 1024 * 1024
TAIL_BYTES = 2 * 1024 * 1024


def cap_section(log_file: TextIO, start: int, *, head_bytes: int = HEAD_BYTES,
                tail_bytes: int = TAIL_BYTES) -> int:
    """Cut the middle out of what ``log_file`` got since byte ``start``; returns bytes cut.

    ``log_file`` is the open log (the parent's handle; the child has exited). It is left
    positioned at its new end, so the caller's next write appends.
    """
    log_file.flush()
    cut = cut_middle(log_file.fileno(), start, head_bytes, tail_bytes,
                     "of the scenario's output cut here: the log keeps the first and the "
                     "last part")
    log_file.seek(0, os.SEEK_END)
    return cut
