"""A chat UI in Textual, run headless: the model's tokens streamed into a transcript widget.

The app (``App.run_async(headless=True)``) starts in ``setup`` and exits in ``teardown``, so
its start-up is outside the measured window and its memory is in the baseline; while it
runs, Textual has replaced ``sys.stdout`` and ``sys.stderr`` with its own capture. Each run
is one chat session: a Textual worker per conversation plays the model, making the harness's
tokens at ``token_delay_us`` each and posting them, a batch at a time, as messages to the
transcript (a ``Log``). The transcript's message handler is the consumer: it writes the
batch, spends ``consumer_delay_us`` per token rendering, and hands it to ``stats.receive``.
At most ``channel_buffer`` tokens wait in the transcript's message queue (the workers hold
a slot per batch until it is rendered), so a slow UI slows the model instead of queueing
without bound.

Variants (each a target of its own):

``TextualChat``          correct: every token once, in order; injected failures reported;
                         on quit the session's workers are cancelled and run returns.
``TextualConfirmStall``  half-way through conversation 0 the worker asks the user to
                         confirm a long answer (a modal, ``push_screen_wait``); headless,
                         nobody answers, and the stream hangs behind that await.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

from textual.app import App, ComposeResult
from textual.message import Message
from textual.screen import ModalScreen
from textual.widgets import Button, Log
from textual.worker import Worker, WorkerCancelled, WorkerFailed

BATCH = 50  # tokens per message to the transcript, at most
TRANSCRIPT_LINES = 1000  # the transcript keeps this many lines: bounded memory
SIZE = (100, 30)  # the headless terminal's columns and rows
FRAME_S = 1 / 30  # a chat transcript redrawn 30 times a second
WRAP = SIZE[0] - 2  # columns of a transcript line: the screen less the scrollbar


@dataclass(eq=False)
class Session:
    """One run of the target: its params and stats, and where its conversations stand."""

    params: Any
    stats: Any
    slots: asyncio.Semaphore
    ending: int = 0  # conversations whose end reached the transcript
    ended: int = 0  # ... and was rendered
    done: asyncio.Event = field(default_factory=asyncio.Event)
    closed: bool = False  # quit: what is still queued for this session is dropped


class Transcript(Log):
    """The chat transcript: the consumer of every conversation's tokens.

    Writing to a ``Log`` costs a layout and a scroll per call, so the transcript renders what
    arrived at most once per frame (``FRAME_S``), as a streaming UI does: a handler spends
    the rendering time and queues the text, the frame writes it and hands it to ``stats``.
    """

    class Tokens(Message):
        def __init__(self, session: Session, conversation: int, text: str, count: int) -> None:
            super().__init__()
            self.session, self.conversation, self.text, self.count = (
                session, conversation, text, count)

    class Ended(Message):
        def __init__(self, session: Session, conversation: int, error: str | None) -> None:
            super().__init__()
            self.session, self.conversation, self.error = session, conversation, error

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        # What arrived since the last frame, in order: (session, conversation, text, end).
        self.pending: list[tuple[Session, int, str | None, str | None]] = []
        self.rendered_at = 0.0

    def on_mount(self) -> None:
        self.set_interval(FRAME_S, self.render_frame, name="transcript-frame")

    async def on_transcript_tokens(self, message: Tokens) -> None:
        session = message.session
        try:
            if session.closed:
                return
            delay = session.params.consumer_delay_us
            if delay:
                await asyncio.sleep(delay * message.count / 1e6)  # rendering takes time
            self.pending.append((session, message.conversation, message.text, None))
            self.render_due()
        finally:
            session.slots.release()

    def on_transcript_ended(self, message: Ended) -> None:
        session = message.session
        if not session.closed:
            self.pending.append((session, message.conversation, None, message.error or ""))
            session.ending += 1
            # The last answer ended: show it now rather than at the next frame.
            if session.ending == session.params.conversations:
                self.render_frame()
            else:
                self.render_due()

    def render_due(self) -> None:
        """Render now when the last frame is a frame old: the first tokens show at once."""
        if time.monotonic() - self.rendered_at >= FRAME_S:
            self.render_frame()

    def render_frame(self) -> None:
        if not self.pending:
            return
        self.rendered_at = time.monotonic()
        arrived, self.pending = self.pending, []
        lines: list[str] = []
        for session, conversation, text, end in arrived:
            if session.closed:
                continue  # quit: nobody reads this session any more
            if text is not None:
                # Wrapped to the screen, as a chat transcript shows a long answer.
                line = f"[{conversation}] {text}"
                lines.extend(line[at:at + WRAP] for at in range(0, len(line), WRAP))
                session.stats.receive(conversation, text)
            elif end:
                lines.append(f"[{conversation}] error: {end}")
                session.stats.fail(conversation, end)
            else:
                lines.append(f"[{conversation}] (end)")
                session.stats.end(conversation)
            if text is None:
                session.ended += 1
                if session.ended == session.params.conversations:
                    session.done.set()
        self.write_lines(lines)


class Confirm(ModalScreen[bool]):
    """Asks whether to go on with a long answer."""

    def compose(self) -> ComposeResult:
        yield Button("Continue", id="continue")

    def on_button_pressed(self, _event: Button.Pressed) -> None:
        self.dismiss(True)


class ChatApp(App[None]):
    def __init__(self) -> None:
        super().__init__()
        self.ready = asyncio.Event()

    def compose(self) -> ComposeResult:
        yield Transcript(max_lines=TRANSCRIPT_LINES, id="transcript")

    def on_ready(self) -> None:
        # Earlier chats fill the screen, so the transcript scrolls from the first token on
        # (its first scrollbar would otherwise lay the screen out again inside the run).
        self.query_one(Transcript).write_lines(
            [f"(an earlier chat, line {line})" for line in range(2 * SIZE[1])])
        self.call_after_refresh(self.ready.set)


class TextualChat:
    confirm_long_answers = False  # the bug of TextualConfirmStall

    def __init__(self) -> None:
        self.app: ChatApp | None = None
        self.running: asyncio.Task[None] | None = None

    # Lifecycle: outside the measured window.

    async def setup(self, params: Any) -> None:
        self.app = ChatApp()
        self.running = asyncio.create_task(self.app.run_async(headless=True, size=SIZE),
                                           name="textual-app")
        ready = asyncio.create_task(self.app.ready.wait())
        await asyncio.wait([ready, self.running], return_when=asyncio.FIRST_COMPLETED)
        ready.cancel()
        if not self.app.ready.is_set():
            await self.running  # raises the reason it could not start
            raise RuntimeError("the Textual app exited before it was ready")

    async def teardown(self) -> None:
        if self.app is not None and self.running is not None:
            self.app.exit()
            await self.running

    # The chat session: the model's workers and the transcript.

    async def run(self, params: Any, stats: Any, quit: asyncio.Event) -> None:
        app, running = self.app, self.running
        assert app is not None, "setup() starts the app"
        assert running is not None
        transcript = app.query_one(Transcript)
        # A slot per batch waiting in the transcript's queue: channel_buffer tokens at most.
        session = Session(params, stats, asyncio.Semaphore(max(1, params.channel_buffer // BATCH)))
        workers = [app.run_worker(self._model(session, transcript, c), name=f"model-{c}",
                                  group="model", exit_on_error=False)
                   for c in range(params.conversations)]
        quitting = asyncio.create_task(quit.wait())
        done = asyncio.create_task(session.done.wait())
        try:
            await asyncio.wait([quitting, done, running], return_when=asyncio.FIRST_COMPLETED)
        finally:
            session.closed = True
            quitting.cancel()
            done.cancel()
            for worker in workers:
                worker.cancel()
            failed = [error for error in await asyncio.gather(
                *(self._ended(worker) for worker in workers)) if error is not None]
        if running.done():
            await running
            raise RuntimeError("the Textual app exited during the run")
        if failed:
            raise failed[0]

    @staticmethod
    async def _ended(worker: Worker[None]) -> BaseException | None:
        try:
            await worker.wait()
        except WorkerCancelled:
            return None
        except WorkerFailed as exc:
            return exc.error
        return None

    async def _model(self, session: Session, transcript: Transcript, conversation: int) -> None:
        try:
            await self._stream(session, transcript, conversation)
        except Exception:
            session.done.set()  # a bug in the model ends the run (its error is raised there)
            raise

    async def _stream(self, session: Session, transcript: Transcript, conversation: int) -> None:
        params = session.params
        fail_at = params.fail_at(conversation)
        stop = params.messages if fail_at is None else fail_at
        ends_at = None if params.duration_s is None else time.monotonic() + params.duration_s
        delay = params.token_delay_us / 1e6
        batch = max(1, min(BATCH, params.channel_buffer))
        index = 0
        while index < stop if ends_at is None else time.monotonic() < ends_at:
            count = batch if ends_at is not None else min(batch, stop - index)
            await session.slots.acquire()
            transcript.post_message(Transcript.Tokens(
                session, conversation, "".join(params.tokens(conversation, index, count)),
                count))
            index += count
            if self.confirm_long_answers and conversation == 0 and index >= stop // 2:
                await self.app.push_screen_wait(Confirm())  # type: ignore[union-attr]
            # Pacing, and a turn for the UI when the model makes tokens faster than it renders.
            await asyncio.sleep(delay * count)
        error = None if fail_at is None else f"model failed after {fail_at} tokens"
        transcript.post_message(Transcript.Ended(session, conversation, error))


class TextualConfirmStall(TextualChat):
    confirm_long_answers = True


def textual_chat() -> TextualChat:
    return TextualChat()


def confirm_stall() -> TextualChat:
    return TextualConfirmStall()
