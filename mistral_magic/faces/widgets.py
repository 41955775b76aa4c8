"""Widgets: the chat panel (``mistral_magic.chat()``, ``%mistral chat``) and the Explain /
Fix buttons under tracebacks. Imported only when a widget is wanted (ipywidgets is heavy).

Replies stream in a background thread that sets widget values (ipykernel sends comm messages
from any thread), so the kernel stays idle and the front end responsive while a reply
arrives; Stop and the other buttons keep working. Requests are prepared on the kernel's main
thread (in the button callback), so the notebook's variables are never read while a cell runs.

Keys in the input box: ipywidgets' ``Textarea`` reports no key events, so a few lines of
JavaScript in the panel (an ``HTML`` widget; rendered by JupyterLab, Notebook 7 and VS Code,
which execute inline handlers in widget HTML) make Enter append an invisible send mark to the
text; the kernel sends when the synced value ends with it. The mark travels with the text in
the same model update, so a send never loses the last characters typed, even while the kernel
is busy. Shift+Enter inserts a new line as usual. Where the script cannot run, the box keeps
its plain behaviour and the Send button sends (the placeholder says which applies).
"""

from __future__ import annotations

import html
import threading
import time
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import ipywidgets as w

from .cell_insert import INSERTED, CellInserter, inserter_for
from .markdown_html import STYLE, code_block_html, markdown_to_html
from .render import Prose, split_segments

if TYPE_CHECKING:
    from ..engine.prepare import PreparedRequest
    from ..session import Assistant
    from .tracebacks import CapturedError

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
SEND_MARK = "\u2063"  # INVISIBLE SEPARATOR, appended by the Enter-key script
STREAM_INTERVAL = 0.1  # seconds between re-renders of a streaming reply
STREAMING, DONE, STOPPED, FAILED = "streaming", "done", "stopped", "failed"
QUEUED_NOTE = (
    "Queued: it appears as a new cell below the next cell you run (not run). Widgets cannot "
    "add cells by themselves; the mistral-magic JupyterLab extension inserts at once."
)


class _Stopped(BaseException):
    """Raised inside the stream when the user pressed Stop (BaseException: nothing in the
    client or a tool loop may swallow it)."""


def _assistant(shell: Any) -> Assistant:
    """The shell's one Assistant (same settings, conversation and usage as the magics)."""
    from .magics import load

    return load(shell).assistant


def _shell() -> Any:
    from IPython import get_ipython

    shell = get_ipython()
    if shell is None:
        raise RuntimeError("mistral_magic.chat() needs IPython or a Jupyter kernel.")
    return shell


def _note(text: str, css: str = "mm-note") -> str:
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


def display_with_fallback(widget: w.Widget, plain_text: str) -> None:
    """Display ``widget`` with ``plain_text`` as what front ends without widgets show."""
    from IPython.display import display

    # Built here rather than by ipywidgets' _repr_mimebundle_, which formats a repr of every
    # trait (about 1 ms) only to be replaced.
    view = {"version_major": 2, "version_minor": 0, "model_id": widget.model_id}
    display({"text/plain": plain_text, WIDGET_VIEW: view}, raw=True)


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
        assistant: Assistant,
        inserter: CellInserter,
        *,
        on_finish: Callable[[ReplyView], None] | None = None,
        on_insert: Callable[[str], None] | None = None,
        fix: bool = False,
    ) -> None:
        self.body = w.HTML(value=_note("Waiting for Mistral…"))  # the block being written
        self.finished_view = w.VBox()  # the blocks already finished, while streaming
        self.tools_view = w.HTML(layout=w.Layout(display="none"))
        self.tool_calls: dict[tuple[int, str], str] = {}  # (round, call id) -> HTML
        super().__init__([self.tools_view, self.finished_view, self.body])
        self.add_class("mm-reply")
        self.assistant = assistant
        self.inserter = inserter
        self.on_finish = on_finish
        self.on_insert = on_insert
        self.fix = fix
        self._text: str | None = None  # the whole reply, once it is over
        self.footer = ""
        self.problem = ""
        self.status = "new"
        self._pieces: list[str] = []  # the text so far, as it arrived
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._finished = threading.Event()

    # -- streaming ---------------------------------------------------------------------------
    def start(self, prepared: PreparedRequest, *, remember: bool = True) -> threading.Thread:
        self.status = STREAMING
        thread = threading.Thread(
            target=self._run, args=(prepared, remember), name="mistral-magic-reply", daemon=True
        )
        thread.start()
        return thread

    @property
    def text(self) -> str:
        """The reply: what has arrived so far while it streams."""
        return self._text if self._text is not None else "".join(self._pieces)

    def _run(self, prepared: PreparedRequest, remember: bool) -> None:
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

        try:
            completion = self.assistant.answer(
                prepared, on_text=on_text, on_tool=self._on_tool, confirm=_no_confirmation
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
            self.assistant.record(prepared, completion, remember=remember)
            footer = self.assistant.footer(prepared, completion)
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
            children: list[w.Widget] = [self.tools_view] if self.tool_calls else []
            children += self._segment_widgets(text) if text else []
            notes = (_note(problem, "mm-note mm-problem") if problem else "") + (
                _note(footer) if footer else ""
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
            how = self.inserter.insert(code)
            note.value = _note(
                "Inserted as a new cell (not run)." if how == INSERTED else QUEUED_NOTE
            )
            if self.on_insert is not None:
                self.on_insert(how)

        button.on_click(insert)
        return w.HBox([button, note])


# --------------------------------------------------------------------------------------------
# The chat panel


_KEYS_JS = """(function(img){
function later(n){if(n<100)setTimeout(function(){bind(n+1)},100);}
function bind(n){var root=img.closest('.ROOT');if(!root){later(n);return;}
var ta=root.querySelector('.mm-input textarea');if(!ta){later(n);return;}
if(ta.dataset.mmKeys)return;ta.dataset.mmKeys='1';
ta.placeholder='Message Mistral · Enter sends, Shift+Enter new line';
ta.addEventListener('keydown',function(e){
if(e.key!=='Enter'||e.shiftKey||e.altKey||e.ctrlKey||e.metaKey||e.isComposing)return;
e.preventDefault();e.stopPropagation();ta.value=ta.value+'MARK';
ta.dispatchEvent(new Event('input',{bubbles:true}));});
var t=root.querySelector('.mm-transcript');
if(t&&window.MutationObserver){new MutationObserver(function(){
t.scrollTop=t.scrollHeight;}).observe(t,{childList:true,subtree:true,characterData:true});}
}bind(0);})(this)"""


def _keys_html(root_class: str) -> str:
    script = _KEYS_JS.replace("ROOT", root_class).replace("MARK", "\\u2063").replace("\n", "")
    return f'{STYLE}<img src="data:," alt="" style="display:none" onerror="{script}">'


class ChatPanel(w.VBox):
    """A conversation with Mistral in the output area, sharing the magics' conversation,
    settings and notebook context."""

    def __init__(self, shell: Any, assistant: Assistant, *, model: str | None = None) -> None:
        self.shell = shell
        self.assistant = assistant
        self.model = model
        self.inserter = inserter_for(shell)
        self.inserter.ask_frontend()
        self.root_class = f"mm-chat-{uuid.uuid4().hex[:10]}"
        self.replies: list[ReplyView] = []
        self.messages: list[dict[str, str]] = []  # {"role": "user"|"assistant", "text": ...}
        self._shown_at: int | None = None

        self.new_button = w.Button(description="New conversation", icon="refresh")
        self.context_toggle = w.ToggleButton(
            description="Context", icon="eye", tooltip="Show what goes with the next message"
        )
        self.refresh_button = w.Button(description="Refresh", icon="refresh")
        for button in (self.new_button, self.context_toggle, self.refresh_button):
            button.layout = w.Layout(width="auto", flex="0 0 auto")
        self.refresh_button.layout.display = "none"
        self.tools_box = w.Text(
            value=assistant.settings.tools,
            placeholder="none",
            description="Tools",
            tooltip="Tools the model may call: none, notebook, all, or names (like --tools)",
            layout=w.Layout(width="230px", flex="0 0 auto"),
        )
        title = w.HTML(value="<b>Mistral</b>", layout=w.Layout(flex="1 1 auto"))
        header = w.HBox(
            [title, self.tools_box, self.context_toggle, self.refresh_button, self.new_button]
        )

        self.transcript = w.VBox(layout=w.Layout(max_height="480px", overflow_y="auto"))
        self.transcript.add_class("mm-transcript")
        self.context_view = w.HTML(layout=w.Layout(display="none"))
        self.input = w.Textarea(
            placeholder="Message Mistral · the Send button sends",
            rows=3,
            continuous_update=True,
            layout=w.Layout(flex="1 1 auto", width="auto"),
        )
        self.input.add_class("mm-input")
        self.send_button = w.Button(description="Send", button_style="primary", icon="paper-plane")
        self.stop_button = w.Button(description="Stop", icon="stop", disabled=True)
        for button in (self.send_button, self.stop_button):
            button.layout = w.Layout(width="auto")
        buttons = w.VBox([self.send_button, self.stop_button])
        self.status = w.HTML(value=_note(self._model_line()))
        keys = w.HTML(value=_keys_html(self.root_class), layout=w.Layout(height="0px"))
        super().__init__(
            [
                keys,
                header,
                self.transcript,
                self.context_view,
                w.HBox([self.input, buttons]),
                self.status,
            ]
        )
        self.add_class(self.root_class)
        self.add_class("mm-chat")

        self.send_button.on_click(lambda _: self.send())
        self.stop_button.on_click(lambda _: self.stop())
        self.new_button.on_click(lambda _: self.new_conversation())
        self.refresh_button.on_click(lambda _: self.refresh_context())
        self.context_toggle.observe(self._toggle_context, "value")
        self.input.observe(self._on_input, "value")

    # -- display -------------------------------------------------------------------------------
    def show(self) -> None:
        display_with_fallback(
            self,
            "Mistral chat panel: it needs a front end that renders ipywidgets "
            "(JupyterLab, Notebook 7, VS Code). Use %%mistral cells otherwise.",
        )
        self._shown_at = getattr(self.shell, "execution_count", None)

    def _ipython_display_(self, **kwargs: Any) -> None:
        # chat() already showed the panel; its return value as the cell's result must not
        # show a second copy.
        if self._shown_at is None or self._shown_at != getattr(self.shell, "execution_count", None):
            self.show()

    # -- actions ---------------------------------------------------------------------------
    @property
    def current(self) -> ReplyView | None:
        return self.replies[-1] if self.replies else None

    @property
    def streaming(self) -> bool:
        return self.current is not None and self.current.streaming

    def _on_input(self, change: dict[str, Any]) -> None:
        value = change["new"] or ""
        if SEND_MARK in value:
            self.send(value)

    def send(self, text: str | None = None) -> ReplyView | None:
        """Send ``text`` (default: the input box). Refused, with a note, while a reply streams."""
        raw = self.input.value if text is None else text
        message = raw.replace(SEND_MARK, "").strip()
        if self.streaming:
            if SEND_MARK in self.input.value:
                self.input.value = self.input.value.replace(SEND_MARK, "")
            self._status(
                "A reply is still streaming: wait for it or press Stop. Your message "
                "stays in the box.",
                problem=True,
            )
            return None
        if not message:
            self.input.value = self.input.value.replace(SEND_MARK, "")
            return None
        from ..tools.core import ToolSelectionError

        try:
            prepared = self.assistant.prepare(
                message, model=self.model, tools=self.tools_box.value.strip() or "none"
            )
        except ToolSelectionError as error:
            self.input.value = self.input.value.replace(SEND_MARK, "")
            self._status(str(error), problem=True)
            return None
        except Exception as error:  # e.g. a describer bug: say so, keep the message
            self.input.value = self.input.value.replace(SEND_MARK, "")
            self._status(f"Could not prepare the request: {type(error).__name__}: {error}", True)
            return None
        self.input.value = ""
        reply = ReplyView(
            self.assistant, self.inserter, on_finish=self._finished, on_insert=self._inserted
        )
        user = w.HTML(value=f'<div class="mm-user">{html.escape(message)}</div>')
        self.messages.append({"role": "user", "text": message})
        self.replies.append(reply)
        self.transcript.children = (*self.transcript.children, user, reply)
        self.send_button.disabled = True
        self.stop_button.disabled = False
        note = f" · {prepared.context_note}" if prepared.context_note else ""
        self._status(f"Asking {prepared.model} · {prepared.prompt_tokens:,} prompt tokens{note}")
        reply.start(prepared)
        return reply

    def stop(self) -> None:
        if self.current is not None:
            self.current.stop()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the current reply is over (for scripts and tests)."""
        return self.current.wait(timeout) if self.current is not None else True

    def new_conversation(self) -> None:
        self.stop()
        self.assistant.conversation.reset()
        self.transcript.children = ()
        self.messages.clear()
        self._status("New conversation: earlier turns are forgotten.")
        self._refresh_if_visible()

    def _finished(self, reply: ReplyView) -> None:
        self.messages.append({"role": "assistant", "text": reply.text})
        self.send_button.disabled = False
        self.stop_button.disabled = True
        if reply.status == DONE:
            self._status(reply.footer)
        elif reply.status == STOPPED:
            self._status("Stopped.")
        else:
            self._status(reply.problem or "The request failed.", problem=True)
        if reply.status != FAILED and threading.current_thread() is threading.main_thread():
            self._refresh_if_visible()

    def _inserted(self, how: str) -> None:
        if how != INSERTED:
            self._status("Code queued: it appears as a new cell below the next cell you run.")

    # -- the context preview ----------------------------------------------------------------
    def _toggle_context(self, change: dict[str, Any]) -> None:
        visible = bool(change["new"])
        self.context_view.layout.display = "" if visible else "none"
        self.refresh_button.layout.display = "" if visible else "none"
        if visible:
            self.refresh_context()

    def _refresh_if_visible(self) -> None:
        if self.context_toggle.value:
            self.refresh_context()

    def refresh_context(self) -> None:
        """Show exactly what would go with the text now in the box."""
        draft = self.input.value.replace(SEND_MARK, "").strip()
        prepared = self.assistant.prepare(draft or "…", model=self.model)
        self.context_view.value = context_preview_html(prepared, draft)

    # -- status line -------------------------------------------------------------------------
    def _model_line(self) -> str:
        return f"{self.model or self.assistant.settings.model} · nothing asked yet"

    def _status(self, text: str, problem: bool = False) -> None:
        self.status.value = _note(text, "mm-note mm-problem" if problem else "mm-note")


def context_preview_html(prepared: PreparedRequest, draft: str) -> str:
    """What goes with the next message: earlier turns, context items, the exact system
    message (context block included)."""
    from ..context.budget import render_context

    packed = prepared.packed
    included = packed.included if packed else []
    turns = (len(prepared.messages) - 2) // 2
    labels = ", ".join(html.escape(item.label) for item in included) or "no notebook context"
    tokens = f"{packed.tokens:,} of {packed.budget:,} context tokens" if packed else ""
    lines = [
        f"<b>With your next message</b> ({'for the text in the box' if draft else 'any text'}): "
        f"{turns} earlier turn(s); {labels}. {tokens}. Whole request: "
        f"{prepared.prompt_tokens:,} prompt tokens to {html.escape(prepared.model)}.",
    ]
    if prepared.context_note:
        lines.append(html.escape(prepared.context_note))
    block = render_context(included) if included else "(no notebook context)"
    lines.append(
        '<pre style="max-height:260px;overflow:auto;white-space:pre-wrap;font-size:11px">'
        f"{html.escape(block)}</pre>"
    )
    return '<div class="mm-note" style="opacity:1">' + "<br>".join(lines) + "</div>"


def _no_confirmation(tool: Any, event: Any) -> bool:
    """The panel streams in a background thread, where nobody can be asked: tools marked
    ``confirm=True`` are declined (the model is told), and the user is pointed to %%mistral."""
    from ..engine.tool_loop import ConfirmationUnavailable

    raise ConfirmationUnavailable(
        "the chat panel cannot ask for confirmation; use %%mistral --tools for this tool"
    )


def chat(*, model: str | None = None) -> ChatPanel:
    """Show a chat panel under the running cell and return it. It shares the magics'
    conversation, settings and notebook context (loading the extension if needed)."""
    shell = _shell()
    panel = ChatPanel(shell, _assistant(shell), model=model)
    panel.show()
    return panel


# --------------------------------------------------------------------------------------------
# Explain / Fix under a traceback

_SHARED: dict[str, Any] = {}


def _shared(name: str, factory: Callable[[], Any]) -> Any:
    """Layouts and styles reused by every error-help view (fewer widget models to create)."""
    if getattr(_SHARED.get(name), "comm", None) is None:  # new, or closed by close_all()
        _SHARED[name] = factory()
    return _SHARED[name]


class ErrorHelp(w.Box):
    """Explain and Fix buttons under one traceback; the answer streams right below them."""

    def __init__(self, shell: Any, captured: CapturedError) -> None:
        layout = _shared("button", lambda: w.Layout(width="auto", height="26px"))
        style = _shared("style", w.ButtonStyle)
        self.explain_button = w.Button(
            description="Explain",
            icon="question",
            layout=layout,
            style=style,
            tooltip="Ask Mistral what went wrong (nothing is re-run)",
        )
        self.fix_button = w.Button(
            description="Fix",
            icon="wrench",
            layout=layout,
            style=style,
            tooltip="Ask Mistral for corrected code, offered as a new cell",
        )
        row = _shared("row", lambda: w.Layout(flex_flow="row wrap", align_items="center"))
        super().__init__(
            [self.explain_button, self.fix_button], layout=row, _dom_classes=("mm-error-help",)
        )
        self.shell = shell
        self.captured = captured
        self.reply: ReplyView | None = None
        self.stop_button: w.Button | None = None
        self.explain_button.on_click(lambda _: self.ask("explain"))
        self.fix_button.on_click(lambda _: self.ask("fix"))

    def ask(self, mode: str) -> ReplyView | None:
        from .tracebacks import FIX, prepare_help

        if self.reply is not None and self.reply.streaming:
            return None
        assistant = _assistant(self.shell)
        self.explain_button.disabled = self.fix_button.disabled = True
        try:
            prepared = prepare_help(assistant, self.shell, self.captured, mode)
        except Exception as error:
            self.explain_button.disabled = self.fix_button.disabled = False
            note = w.HTML(value=_note(f"Could not prepare the request: {error}", "mm-problem"))
            self.children = (self.explain_button, self.fix_button, note)
            return None
        inserter = inserter_for(self.shell)
        inserter.ask_frontend()
        reply = ReplyView(assistant, inserter, on_finish=self._finished, fix=mode == FIX)
        reply.layout.width = "100%"
        self.stop_button = w.Button(description="Stop", icon="stop", layout=w.Layout(width="auto"))
        self.stop_button.on_click(lambda _: reply.stop())
        style = w.HTML(value=STYLE, layout=w.Layout(height="0px"))
        self.children = (self.explain_button, self.fix_button, self.stop_button, style, reply)
        self.reply = reply
        reply.start(prepared)
        return reply

    def wait(self, timeout: float | None = None) -> bool:
        return self.reply.wait(timeout) if self.reply is not None else True

    def _finished(self, reply: ReplyView) -> None:
        self.explain_button.disabled = self.fix_button.disabled = False
        if self.stop_button is not None:
            self.stop_button.layout.display = "none"


def show_error_help(shell: Any, captured: CapturedError) -> ErrorHelp:
    """Explain / Fix buttons under the traceback just shown (plain-text hint without widgets)."""
    from .tracebacks import hint_line

    view = ErrorHelp(shell, captured)
    display_with_fallback(view, hint_line(captured.count))
    _LAST_ERROR_HELP[id(shell)] = view
    return view


#: The newest error-help view per shell (scripts and tests reach its buttons through it).
_LAST_ERROR_HELP: dict[int, ErrorHelp] = {}


def last_error_help(shell: Any | None = None) -> ErrorHelp | None:
    return _LAST_ERROR_HELP.get(id(shell if shell is not None else _shell()))
