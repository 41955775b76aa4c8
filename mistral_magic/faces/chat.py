"""The chat panel (``mistral_magic.chat()``, ``%mistral chat``): a conversation with
Mistral in the output area, sharing the session of the magics (settings, conversation,
usage, notebook context). A face: it imports no other face (the shared reply view is
:mod:`.widgets`).

Keys in the input box: a small front-end module (:mod:`.frontend`, run by anywidget) makes
Enter send — the text travels in the send message itself, since value updates are throttled
and a custom message can overtake them — and Shift+Enter insert a new line; the Send button
sends too. A sent message empties the box; one that is refused (a reply still streaming, the
cost guard) stays in it.
"""

from __future__ import annotations

import html
import threading
import uuid
from typing import TYPE_CHECKING, Any

import ipywidgets as w

from .cell_insert import INSERTED
from .confirm import confirm_row
from .frontend import behaviour, message_box
from .markdown_html import STYLE
from .widgets import (
    DONE,
    FAILED,
    STOPPED,
    ReplyView,
    display_with_fallback,
    inserter_of,
    note_html,
)

if TYPE_CHECKING:
    from ..engine.prepare import PreparedRequest
    from ..session import Session


class ChatPanel(w.VBox):
    """A conversation with Mistral in the output area, sharing the magics' conversation,
    settings and notebook context."""

    def __init__(self, session: Session, *, model: str | None = None) -> None:
        self.session = session
        self.shell = session.shell
        self.model = model
        self.inserter = inserter_of(session)
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
            value=session.settings.tools,
            placeholder="none",
            description="Tools",
            tooltip="Tools the model may call: none, notebook, all, or names (like --tools)",
            layout=w.Layout(width="230px", flex="0 0 auto"),
        )
        title = w.HTML(value="<b>Mistral</b>", layout=w.Layout(flex="1 1 auto"))
        header = w.HBox(
            [title, self.tools_box, self.context_toggle, self.refresh_button, self.new_button]
        )

        # ipywidgets 8 has no overflow_y (it was ignored, with a warning): the box scrolls
        self.transcript = w.VBox(layout=w.Layout(max_height="480px", overflow="auto"))
        self.transcript.add_class("mm-transcript")
        self.context_view = w.HTML(layout=w.Layout(display="none"))
        # Enter sends, Shift+Enter makes a new line: frontend.js, run by anywidget
        self.input = message_box(rows=3, layout=w.Layout(flex="1 1 auto", width="auto"))
        self.send_button = w.Button(description="Send", button_style="primary", icon="paper-plane")
        self.stop_button = w.Button(description="Stop", icon="stop", disabled=True)
        for button in (self.send_button, self.stop_button):
            button.layout = w.Layout(width="auto")
        buttons = w.VBox([self.send_button, self.stop_button])
        self.status = w.HTML(value=note_html(self._model_line()))
        style = w.HTML(value=STYLE, layout=w.Layout(height="0px"))
        super().__init__(
            [
                style,
                behaviour(self.root_class),  # Copy buttons, a transcript that follows
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
        self.input.on_send(self.send)

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

    def send(self, text: str | None = None) -> ReplyView | None:
        """Send ``text`` (default: the input box). Refused, with a note, while a reply streams;
        a refused message from the box goes back into it (Enter empties the box in the
        browser at once, so that no value update from typing still in flight can bring a
        sent message back)."""
        from_box = text is None
        message = (self.input.value if from_box else text).strip()
        reply = self._send_message(message)
        if from_box:
            if reply is not None:
                self.input.value = ""
            elif message:
                self.input.restore(message)
        return reply

    def _send_message(self, message: str) -> ReplyView | None:
        if self.streaming:
            self._status(
                "A reply is still streaming: wait for it or press Stop. Your message "
                "stays in the box.",
                problem=True,
            )
            return None
        if not message:
            return None
        from ..tools.core import ToolSelectionError

        try:
            prepared = self.session.prepare(
                message, model=self.model, tools=self.tools_box.value.strip() or "none"
            )
        except ToolSelectionError as error:
            self._status(str(error), problem=True)
            return None
        except Exception as error:  # e.g. a describer bug: say so, keep the message
            self._status(f"Could not prepare the request: {type(error).__name__}: {error}", True)
            return None
        from ..engine.guard import CONFIRM, REFUSE

        check = self.session.check_cost(prepared)
        if check.verdict == REFUSE:  # nothing is sent; the message stays in the box
            self._status(check.reason, problem=True)
            return None
        reply = ReplyView(
            self.session, self.inserter, on_finish=self._finished, on_insert=self._inserted
        )
        user = w.HTML(value=f'<div class="mm-user">{html.escape(message)}</div>')
        self.messages.append({"role": "user", "text": message})
        self.replies.append(reply)
        if check.verdict == CONFIRM:
            row = confirm_row(
                check,
                on_send=lambda: self._start(reply, prepared, confirmed=True),
                on_cancel=lambda: self._not_sent(reply),
            )
            self.transcript.children = (*self.transcript.children, user, row, reply)
            self._status("Waiting for your confirmation (Mistral.confirm_above).")
            return reply
        self.transcript.children = (*self.transcript.children, user, reply)
        self._start(reply, prepared)
        return reply

    def _start(self, reply: ReplyView, prepared: PreparedRequest, confirmed: bool = False) -> None:
        self.send_button.disabled = True
        self.stop_button.disabled = False
        note = f" · {prepared.context_note}" if prepared.context_note else ""
        tokens = prepared.prompt_tokens_text
        self._status(f"Asking {prepared.model} · {tokens} prompt tokens{note}")
        reply.show_notes(self.session.notices(prepared))
        reply.start(prepared, confirmed=confirmed)

    def _not_sent(self, reply: ReplyView) -> None:
        reply.body.value = note_html("Not sent.")
        self.messages.append({"role": "assistant", "text": ""})
        self._status("Not sent.")

    def stop(self) -> None:
        if self.current is not None:
            self.current.stop()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the current reply is over (for scripts and tests)."""
        return self.current.wait(timeout) if self.current is not None else True

    def new_conversation(self) -> None:
        self.stop()
        self.session.conversation.reset()
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
        draft = self.input.value.strip()
        prepared = self.session.prepare(draft or "…", model=self.model)
        self.context_view.value = context_preview_html(prepared, draft)

    # -- status line -------------------------------------------------------------------------
    def _model_line(self) -> str:
        return f"{self.model or self.session.settings.model} · nothing asked yet"

    def _status(self, text: str, problem: bool = False) -> None:
        self.status.value = note_html(text, "mm-note mm-problem" if problem else "mm-note")


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
        f"{prepared.prompt_tokens_text} prompt tokens to {html.escape(prepared.model)}.",
    ]
    if prepared.context_note:
        lines.append(html.escape(prepared.context_note))
    if prepared.figures:
        shown = ", ".join(f"{f.label} ({f.width}×{f.height} px)" for f in prepared.figures)
        lines.append(html.escape(f"Figures sent as images: {shown}."))
    lines += [html.escape(note) for note in prepared.notes]
    block = render_context(included) if included else "(no notebook context)"
    lines.append(
        '<pre style="max-height:260px;overflow:auto;white-space:pre-wrap;font-size:11px">'
        f"{html.escape(block)}</pre>"
    )
    return '<div class="mm-note" style="opacity:1">' + "<br>".join(lines) + "</div>"


def open_panel(session: Session, *, model: str | None = None) -> ChatPanel:
    """Show a chat panel on ``session`` under the running cell and return it."""
    panel = ChatPanel(session, model=model)
    panel.show()
    return panel
