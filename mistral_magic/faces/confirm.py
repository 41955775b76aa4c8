"""Asking before a costly request is sent (``Mistral.confirm_above``): what the request holds
and may cost, then **Send** or **Cancel**. Shared by the widget faces and the magic in a
notebook; a terminal asks with ``input()`` (:func:`ask_in_terminal`).

A widget cannot be waited for while a cell runs (ipykernel handles the button's message
only once the cell has finished), so nothing blocks on it: the request waits in the row,
and **Send** starts it from the click.
"""

from __future__ import annotations

import html
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import ipywidgets as w

    from ..engine.guard import CostCheck


def confirm_html(check: CostCheck) -> str:
    """The reason and the request's contents and cost (escaped: model ids and labels come
    from the server and the notebook)."""
    return (
        f'<div class="mm-note mm-problem">{html.escape(check.reason)}</div>'
        f'<div class="mm-note">{html.escape(check.summary())}</div>'
    )


def confirm_row(
    check: CostCheck, on_send: Callable[[], None], on_cancel: Callable[[], None] | None = None
) -> w.VBox:
    """The question as a widget: Send calls ``on_send`` (once), Cancel ``on_cancel``."""
    import ipywidgets as w

    note = w.HTML(value=confirm_html(check))
    send = w.Button(
        description="Send", icon="paper-plane", button_style="warning", tooltip="Send it"
    )
    cancel = w.Button(description="Cancel", icon="times", tooltip="Send nothing")
    for button in (send, cancel):
        button.layout = w.Layout(width="auto")
    outcome = w.HTML()
    row = w.VBox([note, w.HBox([send, cancel, outcome])])
    row.add_class("mm-confirm")

    def decided(sent: bool) -> None:
        send.disabled = cancel.disabled = True
        text = "Sent." if sent else "Not sent."
        outcome.value = f'<div class="mm-note">{text}</div>'

    def clicked_send(_: object) -> None:
        if send.disabled:
            return
        decided(True)
        on_send()

    def clicked_cancel(_: object) -> None:
        if cancel.disabled:
            return
        decided(False)
        if on_cancel is not None:
            on_cancel()

    send.on_click(clicked_send)
    cancel.on_click(clicked_cancel)
    row.send_button = send  # type: ignore[attr-defined]  # for scripts and tests
    row.cancel_button = cancel  # type: ignore[attr-defined]
    return row


def ask_in_terminal(check: CostCheck, ask: Callable[[str], str] = input) -> bool:
    """Ask on stdin; True only for yes. No stdin (a script, nbclient) counts as no."""
    try:
        answer = ask(check.question())
    except (EOFError, OSError, NotImplementedError, KeyboardInterrupt):
        return False
    return answer.strip().lower() in ("y", "yes")
