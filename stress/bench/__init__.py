"""``python -m stress bench``: a target on the seed's workloads against a bare asyncio.Queue.

``workloads`` is the catalogue (sizes from the built-in scenarios.yaml, with bench's own
targets), ``ceiling`` the bare-queue pipeline as an ordinary target, and ``bench`` runs both
through the measuring engine (stress.engine.supervise.run_child) and builds the table.
"""
