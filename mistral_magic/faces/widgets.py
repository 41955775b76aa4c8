"""What the two widget faces share (the chat panel, :mod:`.chat`, and the Explain / Fix
buttons, :mod:`.error_buttons`): one streamed reply as a widget, displaying a widget with a
plain-text fallback, and the cell inserter of a session. Imported only when a widget is
wanted (ipywidgets is heavy).

Replies stream in a background thread that sets widget values (ipykernel sends comm messages
from any thread), so the kernel stays idle and the front end responsive while a reply
arrives; Stop and the other buttons keep working. Requests are prepared on the kernel's main
thread (in the button callback), so the notebook's variables are never read while a cell runs.
The session's client is leased for the reply (a settings change meanwhile does not close it)
and its usage and conversation are recorded under the session's lock.
"""

from __future__ import annotations

import html
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import ipywidgets as w

from ..engine.provenance import FACE_PANEL, METADATA_KEY, for_cell
from .cell_insert import INSERTED, CellInserter, inserter_for
from .markdown_html import code_block_html, markdown_to_html
from .render import Prose, new_words, split_segments

if TYPE_CHECKING:
    from ..engine.prepare import PreparedRequest
    from ..session import Session

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
STREAM_INTERVAL = 0.1  # seconds between re-renders of a streaming reply
STREAMING, DONE, STOPPED, FAILED = "streaming", "done", "stopped", "failed"
QUEUED_NOTE = (
    "Queued: it appears as a new cell below the next cell you run (not run). Widgets cannot "
    "add cells by themselves; the mistral-magic JupyterLab extension inserts at once."
)


class _Stopped(BaseException):
    """Raised inside the stream when the user pressed Stop (BaseException: nothing in the
    client or a tool loop may swallow it)."""


def inserter_of(session: Session) -> CellInserter:
    """The session's cell inserter (one per shell: one comm, one queue), asking the front
    end for its comm target once."""
    return inserter_for(session)


def note_html(text: str, css: str = "mm-note") -> str:
    """A line of plain text (escaped) in the panel's note style."""
    return f'<div class="{css}">{html.escape(text)}</div>'


def tool_call_html(event: Any) -> str:
    """``🔧 describe_variable(name="df")`` with the result folded underneath (escaped: the
    model chose the call)."""
    from .render import tool_call_summary

    signature, tail = tool_call_summary(event)
    summary = f"🔧 <code>{html.escape(signature, quote=False)}</code>{html.escape(tail)}"
    if not event.done or not event.result:
        return f"<div>{summary}</div>"
    result = code_block_html(event.result, "text", copy_button=False)
    return f"<details><summary>{summary}</summary>{result}</details>"


def display_with_fallback(
    widget: w.Widget, plain_text: str, metadata: dict[str, Any] | None = None
) -> None:
    """Display ``widget`` with ``plain_text`` as what front ends without widgets show."""
    from IPython.display import display

    # Built here rather than by ipywidgets' _repr_mimebundle_, which formats a repr of every
    # trait (about 1 ms) only to be replaced.
    view = {"version_major": 2, "version_minor": 0, "model_id": widget.model_id}
    display({"text/plain": plain_text, WIDGET_VIEW: view}, raw=True, metadata=metadata)


# --------------------------------------------------------------------------------------------
# One streamed reply


class ReplyView(w.VBox):
    """A reply: Markdown rendered as it streams, then its code blocks with Copy (in the
    block) and Insert as new cell (under each Python block).

    While it streams, the reply is cut into blocks (:mod:`markdown_stream`): each finished
    block gets a widget of its own, rendered and sent once, and only the last one is
    re-rendered as text arrives, so an update costs the same late in a long reply as early."""

    def __init__(
        self,
        session: Session,
        inserter: CellInserter,
        *,
        on_finish: Callable[[ReplyView], None] | None = None,
        on_insert: Callable[[str], None] | None = None,
        fix: bool = False,
        face: str = FACE_PANEL,
        execution_count: int | None = None,
    ) -> None:
        self.body = w.HTML(value=note_html("Waiting for Mistral…"))  # the block being written
        self.finished_view = w.VBox()  # the blocks already finished, while streaming
        self.tools_view = w.HTML(layout=w.Layout(display="none"))
        self.tool_calls: dict[tuple[int, str], str] = {}  # (round, call id) -> HTML
        # What the user should know before the answer (a deprecated model, a figure sent as
        # words), and a reasoning model's thinking: a live line while it thinks, then the
        # whole thinking collapsed under the answer.
        self.notes_view = w.HTML(layout=w.Layout(display="none"))
        self.thinking_view = w.HTML(layout=w.Layout(display="none"))
        self.thinking = ""
        super().__init__(
            [self.notes_view, self.tools_view, self.thinking_view, self.finished_view, self.body]
        )
        self.add_class("mm-reply")
        self.session = session
        self.inserter = inserter
        self.on_finish = on_finish
        self.on_insert = on_insert
        self.fix = fix
        self.face = face
        self.execution_count = execution_count  # the cell that asked (the magic's), if any
        #: The reply's provenance once it is done (an inserted cell's metadata carries it).
        self.provenance: dict[str, Any] | None = None
        self._text: str | None = None  # the whole reply, once it is over
        self.footer = ""
        self.problem = ""
        self.status = "new"
        self._pieces: list[str] = []  # the text so far, as it arrived
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._finished = threading.Event()

    # -- streaming ---------------------------------------------------------------------------
    def show_notes(self, lines: list[str]) -> None:
        """Lines shown above the reply (escaped: they quote model ids and server text)."""
        if lines:
            self.notes_view.value = "".join(note_html(f"ℹ️ {line}") for line in lines)
            self.notes_view.layout.display = ""

    def start(
        self, prepared: PreparedRequest, *, remember: bool = True, confirmed: bool = False
    ) -> threading.Thread:
        """Send ``prepared`` and stream the reply in a thread (``confirmed``: the user
        confirmed it, see :meth:`Session.answer`)."""
        self.status = STREAMING
        thread = threading.Thread(
            target=self._run,
            args=(prepared, remember, confirmed),
            name="mistral-magic-reply",
            daemon=True,
        )
        thread.start()
        return thread

    @property
    def text(self) -> str:
        """The reply: what has arrived so far while it streams."""
        return self._text if self._text is not None else "".join(self._pieces)

    def _run(self, prepared: PreparedRequest, remember: bool, confirmed: bool) -> None:
        from ..api.errors import MistralError
        from .hints import for_notebook
        from .markdown_stream import MarkdownBlocks

        blocks = MarkdownBlocks()
        last = 0.0
        seen = 0

        def on_text(text: str) -> None:
            nonlocal last, seen
            if self._stop.is_set():
                raise _Stopped()
            new, seen = text[seen:], len(text)  # no copy of the whole text is kept
            self._pieces.append(new)
            finished = blocks.feed(new)
            now = time.monotonic()
            if not finished and now - last < STREAM_INTERVAL:
                return
            last = now
            with self._lock:
                if self.status != STREAMING:
                    return
                if finished:
                    done = [w.HTML(value=markdown_to_html(b, copy_buttons=False)) for b in finished]
                    self.finished_view.children = (*self.finished_view.children, *done)
                self.body.value = markdown_to_html(blocks.tail + " ▌", copy_buttons=False)

        thought_at = 0.0
        words = 0

        def on_thinking(thinking: str) -> None:
            nonlocal thought_at, words
            if self._stop.is_set():
                raise _Stopped()
            seen = len(self.thinking)
            words += new_words(self.thinking[seen - 1 : seen], thinking[seen:])
            self.thinking = thinking
            now = time.monotonic()
            if now - thought_at < STREAM_INTERVAL:
                return
            thought_at = now
            with self._lock:
                if self.status == STREAMING:
                    self.thinking_view.value = note_html(f"💭 Reasoning… {words:,} words")
                    self.thinking_view.layout.display = ""

        try:
            completion = self.session.answer(
                prepared,
                on_text=on_text,
                on_tool=self._on_tool,
                confirm=no_confirmation,
                on_thinking=on_thinking,
                confirmed=confirmed,
            )
        except _Stopped:
            return
        except MistralError as error:
            partial = self.text
            note = "the answer above is incomplete" if partial else ""
            self._finish(FAILED, partial, note, problem=for_notebook(error))
        except Exception as error:  # a thread must never die silently
            problem = f"{type(error).__name__}: {error}"
            self._finish(FAILED, self.text, "", problem=problem)
        else:
            if self._stop.is_set():
                return
            self.provenance = self.session.record(
                prepared,
                completion,
                remember=remember,
                face=self.face,
                execution_count=self.execution_count,
            )
            footer = self.session.footer(prepared, completion)
            self._finish(DONE, completion.content, footer)

    def _on_tool(self, event: Any) -> None:
        """Each tool call as a line above the reply, its result folded underneath."""
        if self._stop.is_set():
            raise _Stopped()
        self.tool_calls[(event.round, event.call_id)] = tool_call_html(event)
        with self._lock:
            calls = "".join(self.tool_calls.values())
            self.tools_view.value = f'<div class="mm-md">{calls}</div>'
            self.tools_view.layout.display = ""

    def stop(self) -> None:
        """Stop now: the partial answer stays; the request is dropped at its next chunk."""
        self._stop.set()
        self._finish(STOPPED, self.text, "⏹ stopped: the partial answer above is kept")

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the reply finished, failed or was stopped (tests, scripts)."""
        return self._finished.wait(timeout)

    @property
    def streaming(self) -> bool:
        return self.status == STREAMING

    # -- the final view ----------------------------------------------------------------------
    def _finish(self, status: str, text: str, footer: str, problem: str = "") -> None:
        with self._lock:
            if self.status != STREAMING:
                return
            self.status, self._text, self.footer, self.problem = status, text, footer, problem
            children: list[w.Widget] = [self.notes_view] if self.notes_view.value else []
            children += [self.tools_view] if self.tool_calls else []
            children += self._segment_widgets(text) if text else []
            if self.thinking.strip():  # collapsed, under the answer
                children.append(w.HTML(value=thinking_html(self.thinking)))
            notes = (note_html(problem, "mm-note mm-problem") if problem else "") + (
                note_html(footer) if footer else ""
            )
            if notes:
                children.append(w.HTML(value=notes))
            self.children = tuple(children)
            self._finished.set()
        if self.on_finish is not None:
            self.on_finish(self)

    def _segment_widgets(self, text: str) -> list[w.Widget]:
        segments = split_segments(text)
        python = [i for i, s in enumerate(segments) if not isinstance(s, Prose) and s.is_python]
        widgets: list[w.Widget] = []
        for index, segment in enumerate(segments):
            if isinstance(segment, Prose):
                widgets.append(w.HTML(value=markdown_to_html(segment.markdown)))
                continue
            block = code_block_html(segment.code, segment.language)
            widgets.append(w.HTML(value=f'<div class="mm-md">{block}</div>'))
            if segment.is_python and segment.code.strip():
                is_fix = self.fix and index == python[-1]
                widgets.append(self._insert_row(segment.code, primary=is_fix))
        return widgets

    def _insert_row(self, code: str, *, primary: bool) -> w.HBox:
        button = w.Button(
            description="Insert fix as new cell" if primary else "Insert as new cell",
            icon="plus",
            button_style="primary" if primary else "",
            tooltip="Add this code as a new cell (it is not run)",
            layout=w.Layout(width="auto", flex="0 0 auto"),
        )
        note = w.HTML()

        def insert(_: Any) -> None:
            metadata = None
            if self.provenance is not None:
                metadata = {METADATA_KEY: for_cell(self.provenance, code)}
                self.session.answers.inserted(self.provenance, code)
            how = self.inserter.insert(code, metadata)
            note.value = note_html(
                "Inserted as a new cell (not run)." if how == INSERTED else QUEUED_NOTE
            )
            if self.on_insert is not None:
                self.on_insert(how)

        button.on_click(insert)
        return w.HBox([button, note])


def thinking_html(thinking: str) -> str:
    """A reasoning model's thinking, collapsed (``<details>`` without ``open``), as sanitized
    Markdown (raw HTML escaped, as every reply here)."""
    words = len(thinking.split())
    summary = f"💭 Reasoning · {words:,} word{'s' if words != 1 else ''}"
    body = markdown_to_html(thinking, copy_buttons=False)
    return f'<details class="mm-thinking"><summary>{html.escape(summary)}</summary>{body}</details>'


def no_confirmation(tool: Any, event: Any) -> bool:
    """The panel streams in a background thread, where nobody can be asked: tools marked
    ``confirm=True`` are declined (the model is told), and the user is pointed to %%mistral."""
    from ..engine.tool_loop import ConfirmationUnavailable

    raise ConfirmationUnavailable(
        "the chat panel cannot ask for confirmation; use %%mistral --tools for this tool"
    )
