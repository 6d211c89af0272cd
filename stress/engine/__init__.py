"""The measuring engine: the only code that starts, supervises and measures a scenario child.

Data flow: ``runner`` (repeats, the median run, the evidence plan) asks ``supervise.run_child``
for one child run; the supervisor writes a ``protocol.ChildSpec``, starts
``python -m stress.engine.child SPEC.json``, enforces each phase's deadline, reads the child's
``protocol.Sample`` lines as they arrive and its final ``protocol.ChildFigures``; ``judge``
turns those into Metrics, Checks and Failures. ``bench`` and ``ci/profiler_overhead.py``
measure through ``supervise.run_child`` too.
"""
