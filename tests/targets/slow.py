"""A counter-only target that is surely still running when a test looks at it or signals it.

Tests that run it in a container copy this file beside their scenarios (the container sees
only what is mounted): ``slow:Slow``.
"""

import asyncio

from stress.target import Params, Stats


class Slow:
    """One token every 50 ms until told to quit."""

    async def run(self, params: Params, stats: Stats, quit: asyncio.Event) -> None:
        for _ in range(params.messages):
            if quit.is_set():
                return
            await asyncio.sleep(0.05)
            stats.messages_sent += 1
            stats.tokens_received += 1
        stats.streams_completed += 1
