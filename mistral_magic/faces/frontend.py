"""The widgets' browser behaviour as a real front-end module (``frontend.js``), run by
anywidget in JupyterLab, Notebook 7, VS Code and Colab: the chat panel's message box (Enter
sends, Shift+Enter makes a new line) and the behaviour of rendered replies (Copy buttons,
a transcript that follows a streaming reply while it is scrolled to the bottom). Nothing is
injected through ``<img onerror>`` or inline ``onclick`` attributes, which front ends with
strict policies drop. Display code shared by the faces; it imports no face.

anywidget is imported when the first widget is made, not at ``%load_ext``.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

import traitlets

MODULE = Path(__file__).with_name("frontend.js")
SEND_KEYS = "Message Mistral · Enter sends, Shift+Enter new line"


@cache
def _classes() -> tuple[type, type]:
    import anywidget

    class MessageBox(anywidget.AnyWidget):
        """A text box whose Enter key sends: ``on_send`` callbacks run with ``value`` set to
        what the box held (the ``send`` message carries it); the browser empties the box at
        once, and ``restore`` puts back a message that was not sent."""

        _esm = MODULE
        kind = traitlets.Unicode("message_box").tag(sync=True)
        value = traitlets.Unicode("").tag(sync=True)
        placeholder = traitlets.Unicode(SEND_KEYS).tag(sync=True)
        rows = traitlets.Int(3).tag(sync=True)
        disabled = traitlets.Bool(False).tag(sync=True)

        def __init__(self, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self._send_callbacks: list[Callable[[], Any]] = []
            self.on_msg(self._on_message)

        def on_send(self, callback: Callable[[], Any]) -> None:
            self._send_callbacks.append(callback)

        def restore(self, text: str) -> None:
            """Put ``text`` back into the box (a message that was not sent): Enter has
            emptied it in the browser already."""
            self.value = text
            self.send({"type": "restore", "text": text})

        def _on_message(self, _widget: Any, content: Any, _buffers: Any) -> None:
            if isinstance(content, dict) and content.get("type") == "send":
                text = content.get("text")
                if isinstance(text, str):
                    self.value = text  # what the box held when Enter was pressed
                for callback in list(self._send_callbacks):
                    callback()

    class Behaviour(anywidget.AnyWidget):
        """Invisible: gives the nearest ancestor with class ``root`` its Copy buttons and,
        if it holds a ``.mm-transcript``, scroll-follow."""

        _esm = MODULE
        kind = traitlets.Unicode("behaviour").tag(sync=True)
        root = traitlets.Unicode("").tag(sync=True)

    return MessageBox, Behaviour


def message_box(**kwargs: Any) -> Any:
    """A new :class:`MessageBox` (``value``, ``placeholder``, ``rows``, ``disabled``,
    ``layout``; ``on_send(callback)``)."""
    return _classes()[0](**kwargs)


def behaviour(root_class: str) -> Any:
    """A new invisible :class:`Behaviour` for the ancestor with class ``root_class``."""
    from ipywidgets import Layout

    return _classes()[1](root=root_class, layout=Layout(width="0px", height="0px"))
