"""``%load_ext mistral_magic``: wiring the kernel's faces to the shell's session.

This is the one module that knows every kernel face, so that the faces never import each
other: the magics get the chat panel as a callable (``%mistral chat``), and the session's
error log hands new errors to the Explain / Fix buttons when ``Mistral.error_help`` is on.
Widgets are imported only when one is shown (ipywidgets is heavy).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .session import Session, end_session, session_for

if TYPE_CHECKING:
    from .engine.failures import CapturedError
    from .faces.chat import ChatPanel

MAGICS = "magics"  # where the session keeps its registered magics


def load(shell: Any) -> Session:
    """Register the magics, the ``Mistral`` settings and the error hook on ``shell``
    (idempotent); returns the shell's session."""
    session = session_for(shell)
    assert session is not None
    if session.kept(MAGICS) is not None:
        return session
    from .faces.magics import MistralMagics, keep_question_marks, warm_imports

    magics = MistralMagics(shell, session, open_chat=lambda: open_chat(session))
    shell.register_magics(magics)
    shell.input_transformers_cleanup.append(keep_question_marks)
    session.remember(MAGICS, magics)
    session.errors.listeners.append(lambda captured: offer_error_help(session, captured))
    session.errors.install()  # remembers errors; buttons only with Mistral.error_help
    session.figures.install()  # remembers the figures cells show, for vision models
    # The labextension's comm, opened now: it tags the cells code goes into with their
    # provenance, and sends the open notebook before a %mistral audit.
    from .faces.cell_insert import inserter_for

    inserter_for(session)
    session.warm_up(warm_imports)
    return session


def unload(shell: Any) -> None:
    """Undo :func:`load`: magics, input transformer, error hook, settings, clients."""
    session = session_for(shell, create=False)
    if session is None or session.kept(MAGICS) is None:
        return
    from .faces.magics import keep_question_marks

    if keep_question_marks in shell.input_transformers_cleanup:
        shell.input_transformers_cleanup.remove(keep_question_marks)
    for kind in ("line", "cell"):
        shell.magics_manager.magics[kind].pop("mistral", None)
    end_session(shell)


def chat(*, model: str | None = None) -> ChatPanel:
    """Show a chat panel under the running cell and return it. It shares the magics'
    conversation, settings and notebook context (loading the extension if needed)."""
    from IPython import get_ipython

    shell = get_ipython()
    if shell is None:
        raise RuntimeError("mistral_magic.chat() needs IPython or a Jupyter kernel.")
    return open_chat(load(shell), model=model)


def open_chat(session: Session, *, model: str | None = None) -> ChatPanel:
    from .faces.chat import open_panel

    return open_panel(session, model=model)


def offer_error_help(session: Session, captured: CapturedError) -> None:
    """Under a new traceback: Explain / Fix buttons when ``Mistral.error_help`` is on (one
    hint line where widgets cannot show)."""
    if not session.settings.error_help:
        return
    from .faces.render import hint_line, in_notebook

    if in_notebook(session.shell):
        try:
            from .faces.error_buttons import show_error_help

            show_error_help(session, captured)
            return
        except Exception:  # no ipywidgets, or a widget failure: never a second traceback
            pass
    print(hint_line(captured.count))
