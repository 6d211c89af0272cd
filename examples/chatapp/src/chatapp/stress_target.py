"""The chat app as a stress-kit target: the kit makes the tokens and checks what the UI shows."""

from __future__ import annotations

from typing import Any

import anyio

from chatapp.app import Done, Token, Transcript, backend, ui


class ChatTarget:
    """Backends -> one bounded anyio memory stream -> the UI, for each scenario."""

    def __init__(self) -> None:
        self.transcript = Transcript()

    async def run(self, params: Any, stats: Any, quit: anyio.Event) -> None:
        self.transcript = Transcript()
        send, receive = anyio.create_memory_object_stream[Any](max(1, params.channel_buffer))

        def on_token(token: Token, text: str) -> None:
            stats.receive(token.conversation, text)

        def on_done(done: Done) -> None:
            if done.error is None:
                stats.end(done.conversation)
            else:
                stats.fail(done.conversation, done.error)

        async with anyio.create_task_group() as group:
            async def watch_quit() -> None:
                await quit.wait()
                group.cancel_scope.cancel()

            group.start_soon(watch_quit)
            async with send:
                for conversation in range(params.conversations):
                    group.start_soon(self._backend, params, conversation, send.clone())
            await ui(receive, self.transcript, on_token, on_done,
                     delay_s=params.consumer_delay_us / 1e6,
                     conversations=params.conversations)
            group.cancel_scope.cancel()

    @staticmethod
    async def _backend(params: Any, conversation: int, send: Any) -> None:
        await backend(conversation,
                      lambda start, count: params.tokens(conversation, start, count),
                      params.messages, send, delay_s=params.token_delay_us / 1e6,
                      fail_at=params.fail_at(conversation))
