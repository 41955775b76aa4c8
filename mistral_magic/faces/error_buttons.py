"""Explain / Fix buttons under a traceback (``%mistral errors on``): clicking one streams the
answer right there, without re-running anything; a fix's code gets an *Insert fix as new
cell* button. A face: it imports no other face. :mod:`mistral_magic.extension` shows the
buttons when the session's error log reports a new error.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import ipywidgets as w

from ..engine.prompts import EXPLAIN, FIX, Kind
from ..engine.provenance import FACE_BUTTONS
from .confirm import confirm_row
from .frontend import behaviour
from .markdown_html import STYLE
from .render import hint_line
from .widgets import ReplyView, display_with_fallback, inserter_of, note_html

if TYPE_CHECKING:
    from ..engine.failures import CapturedError
    from ..session import Session

#: Where the newest view is kept in its session (scripts and tests reach its buttons there).
LAST_VIEW = "error_help"
#: Output metadata of the Explain / Fix widget (labextension/src/errors.ts reads it).
ERROR_HELP_METADATA = {"mistral_magic": {"error_help": True}}

_SHARED: dict[str, Any] = {}


def _shared(name: str, factory: Callable[[], Any]) -> Any:
    """Layouts and styles reused by every error-help view (fewer widget models to create)."""
    if getattr(_SHARED.get(name), "comm", None) is None:  # new, or closed by close_all()
        _SHARED[name] = factory()
    return _SHARED[name]


class ErrorHelp(w.Box):
    """Explain and Fix buttons under one traceback; the answer streams right below them."""

    def __init__(self, session: Session, captured: CapturedError) -> None:
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
        self.session = session
        self.shell = session.shell
        self.captured = captured
        self.reply: ReplyView | None = None
        self.confirmation: w.VBox | None = None  # Send / Cancel, when one is asked for
        self.stop_button: w.Button | None = None
        self.explain_button.on_click(lambda _: self.ask(EXPLAIN))
        self.fix_button.on_click(lambda _: self.ask(FIX))

    def ask(self, mode: Kind) -> ReplyView | None:
        if self.reply is not None and self.reply.streaming:
            return None
        self.explain_button.disabled = self.fix_button.disabled = True
        try:
            prepared = self.session.prepare_error_help(self.captured, mode)
        except Exception as error:
            self.explain_button.disabled = self.fix_button.disabled = False
            note = w.HTML(value=note_html(f"Could not prepare the request: {error}", "mm-problem"))
            self.children = (self.explain_button, self.fix_button, note)
            return None
        from ..engine.guard import CONFIRM, REFUSE

        check = self.session.check_cost(prepared)
        if check.verdict == REFUSE:  # nothing is sent
            self.explain_button.disabled = self.fix_button.disabled = False
            note = w.HTML(value=note_html(check.reason, "mm-note mm-problem"))
            self.children = (self.explain_button, self.fix_button, note)
            return None
        reply = ReplyView(
            self.session,
            inserter_of(self.session),
            on_finish=self._finished,
            fix=mode == FIX,
            face=FACE_BUTTONS,
        )
        reply.layout.width = "100%"
        self.stop_button = w.Button(description="Stop", icon="stop", layout=w.Layout(width="auto"))
        self.stop_button.on_click(lambda _: reply.stop())
        style = w.HTML(value=STYLE, layout=w.Layout(height="0px"))
        copy = behaviour("mm-error-help")  # the reply's Copy buttons (frontend.js)
        self.reply = reply
        reply.show_notes(self.session.notices(prepared))
        if check.verdict == CONFIRM:

            def cancelled() -> None:
                self.explain_button.disabled = self.fix_button.disabled = False

            row = confirm_row(
                check, on_send=lambda: reply.start(prepared, confirmed=True), on_cancel=cancelled
            )
            self.confirmation = row
            self.children = (self.explain_button, self.fix_button, style, copy, row, reply)
            return reply
        self.children = (self.explain_button, self.fix_button, self.stop_button, style, copy, reply)
        reply.start(prepared)
        return reply

    def wait(self, timeout: float | None = None) -> bool:
        return self.reply.wait(timeout) if self.reply is not None else True

    def _finished(self, reply: ReplyView) -> None:
        self.explain_button.disabled = self.fix_button.disabled = False
        if self.stop_button is not None:
            self.stop_button.layout.display = "none"


def show_error_help(session: Session, captured: CapturedError) -> ErrorHelp:
    """Explain / Fix buttons under the traceback just shown (plain-text hint without widgets)."""
    view = ErrorHelp(session, captured)
    # The marker tells the JupyterLab sidebar not to add its own Explain / Fix buttons.
    display_with_fallback(view, hint_line(captured.count), ERROR_HELP_METADATA)
    session.remember(LAST_VIEW, view)
    return view


def last_error_help(session: Session) -> ErrorHelp | None:
    """The newest Explain / Fix view of ``session``."""
    return session.kept(LAST_VIEW)
