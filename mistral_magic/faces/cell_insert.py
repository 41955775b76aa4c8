"""Putting code into a new notebook cell from a widget button.

The kernel's own way, ``shell.set_next_input``, only works as part of an execute reply, so
not from a widget callback. Two routes instead:

* **The JupyterLab extension's comm** (any time; JupyterLab and Notebook 7, front end in
  ``labextension/src/insert.ts``). Protocol, comm target ``mistral_magic``:

  - the kernel opens a comm to target ``mistral_magic``; the labextension, if installed,
    accepts it and sends ``{"action": "ready"}``. (A front end without that target closes the
    comm at once, which is how its absence shows.)
  - the labextension may also open a comm to the kernel-side target ``mistral_magic`` itself:
    it does so on connecting to a kernel that already holds a comm of that target (a page
    reload left the kernel talking to a page that is gone). The newest comm replaces the
    previous one, and counts as ready.
  - to insert, the kernel sends ``{"action": "insert_cell", "code": "...", "metadata":
    {...}}``; the front end adds a code cell below the active cell of the notebook this kernel
    belongs to, unrun, with ``metadata`` (the reply's provenance under ``"mistral"``).
  - when a reply offers code through ``set_next_input`` (the magic), the kernel first sends
    ``{"action": "tag_next_input", "code": "...", "metadata": {...}}``: the front end puts
    ``metadata`` on the cell that the execute reply inserts with exactly that code.
  - before it runs a cell that holds ``%mistral audit``, the front end sends ``{"action":
    "notebook", "path": "...", "cells": [...]}``: the notebook as it is open (each cell's
    index, type, execution count, source, ``metadata.mistral`` and its outputs'), which the
    audit reads instead of the saved file. (The front end sends it before the execute
    request, on the same connection: the kernel handles it first.)

* **Queued for the next execution** (every front end that honours ``set_next_input``:
  JupyterLab, Notebook 7, VS Code): the code waits until the user runs any cell; a
  ``post_run_cell`` hook then hands it to ``set_next_input``, so it appears as a new cell
  below that cell. If that cell already offers a cell itself (e.g. a ``%%mistral`` answer),
  the queued code waits for the next one: a reply holds only one.
"""

from __future__ import annotations

import contextlib
import threading
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..session import Session

COMM_TARGET = "mistral_magic"
INSERTED = "inserted"
QUEUED = "queued"
#: Where a session keeps its inserter, and the notebook the front end last sent.
INSERTER = "inserter"


class CellInserter:
    """Inserts code as a new cell for one shell: through the labextension when it answered,
    otherwise by queueing it for the next executed cell. One per session (kept there by
    :func:`.widgets.inserter_of`, closed with it on ``%unload_ext``)."""

    def __init__(self, shell: Any) -> None:
        self.shell = shell
        self.queue: list[str] = []
        self._lock = threading.Lock()
        self._comm: Any = None
        self._ready = False
        self._hooked = False
        self._asked = False
        #: The notebook as the front end last sent it (``%mistral audit``), and when.
        self.notebook: dict[str, Any] | None = None
        self.notebook_at: int | None = None  # the execution count it came before

    # -- the labextension ------------------------------------------------------------------
    @property
    def frontend_ready(self) -> bool:
        return self._ready and self._comm is not None

    def ask_frontend(self) -> None:
        """Open the comm once (best effort): a front end with the labextension answers."""
        if self._asked or getattr(self.shell, "kernel", None) is None:
            return
        self._asked = True
        try:
            from comm import create_comm, get_comm_manager

            get_comm_manager().register_target(COMM_TARGET, self._frontend_opened)
            self._attach(create_comm(target_name=COMM_TARGET, data={"action": "hello"}))
        except Exception:  # no comm support: the queue still works
            self._comm = None

    def _frontend_opened(self, comm: Any, open_msg: dict[str, Any]) -> None:
        self._attach(comm)
        self._ready = True

    def _attach(self, comm: Any) -> None:
        previous, self._comm = self._comm, comm
        if previous is not None and previous is not comm:
            with contextlib.suppress(Exception):  # its page may be gone already
                previous.close()
        comm.on_msg(self._on_message)
        comm.on_close(lambda msg: self._on_close(msg, comm))

    def _on_message(self, msg: dict[str, Any]) -> None:
        data = (msg.get("content") or {}).get("data") or {}
        if data.get("action") == "ready":
            self._ready = True
        elif data.get("action") == "notebook" and isinstance(data.get("cells"), list):
            self._ready = True
            self.notebook = data
            self.notebook_at = cell_number(self.shell)  # the last cell that ran

    def _on_close(self, msg: dict[str, Any], comm: Any = None) -> None:
        if comm is not None and comm is not self._comm:
            return  # an earlier comm, already replaced
        self._ready = False
        self._comm = None

    # -- inserting -------------------------------------------------------------------------
    def insert(self, code: str, metadata: dict[str, Any] | None = None) -> str:
        """Insert ``code`` now (``INSERTED``, with ``metadata`` on the new cell) or at the
        next executed cell (``QUEUED``: without metadata, ``set_next_input`` has none)."""
        message: dict[str, Any] = {"action": "insert_cell", "code": code}
        if metadata:
            message["metadata"] = metadata
        if self._send(message):
            return INSERTED
        with self._lock:
            self.queue.append(code)
        self._hook()
        return QUEUED

    def tag_next_input(self, code: str, metadata: dict[str, Any]) -> bool:
        """Ask the front end to put ``metadata`` on the cell ``set_next_input(code)`` makes
        (False when no front end with the labextension listens)."""
        return self._send({"action": "tag_next_input", "code": code, "metadata": metadata})

    def _send(self, message: dict[str, Any]) -> bool:
        if not self.frontend_ready:
            return False
        try:
            self._comm.send(message)
            return True
        except Exception:
            self._ready = False
            return False

    def _hook(self) -> None:
        if not self._hooked:
            self.shell.events.register("post_run_cell", self.post_run_cell)
            self._hooked = True

    def post_run_cell(self, result: Any = None) -> None:
        if not self.queue or _offers_a_cell_already(self.shell):
            return
        with self._lock:
            code = queued_cell(self.queue)
            self.queue.clear()
        self.shell.set_next_input(code, replace=False)

    def close(self) -> None:
        if self._hooked:
            with contextlib.suppress(ValueError):
                self.shell.events.unregister("post_run_cell", self.post_run_cell)
            self._hooked = False
        if self._comm is not None:
            with contextlib.suppress(Exception):
                self._comm.close()
            self._comm = None
        self._ready = False


def inserter_for(session: Session) -> CellInserter:
    """The session's cell inserter (one per shell: one comm, one queue), its comm to the
    labextension opened once."""
    inserter = session.keep(INSERTER, lambda: CellInserter(session.shell))
    inserter.ask_frontend()
    return inserter


def tag_next_input(session: Session, code: str, metadata: dict[str, Any]) -> bool:
    """Have the labextension (if it listens) put ``metadata`` on the cell
    ``set_next_input(code)`` is about to make."""
    return inserter_for(session).tag_next_input(code, metadata)


def live_notebook(session: Session) -> dict[str, Any] | None:
    """The notebook as the front end sent it just before the running cell (the audit's
    source when there is one), else None."""
    inserter = session.kept(INSERTER)
    if inserter is None or inserter.notebook is None:
        return None
    now = cell_number(session.shell)
    if inserter.notebook_at is None or now != inserter.notebook_at + 1:
        return None  # sent before an earlier cell: it may be stale
    return inserter.notebook


def cell_number(shell: Any) -> int | None:
    """The number n of the cell running now (``In[n]``), or between cells of the last one
    that ran. Not ``shell.execution_count``: IPython 9 counts it up as a cell starts, IPython
    8 as it ends; ``In`` (the inputs, the running cell's included) agrees in both."""
    history = (getattr(shell, "user_ns", None) or {}).get("In")
    if isinstance(history, list) and history:
        return len(history) - 1
    count = getattr(shell, "execution_count", None)
    return count if isinstance(count, int) else None


def queued_cell(codes: list[str]) -> str:
    """One cell for every queued block, each labelled when there are several."""
    if len(codes) == 1:
        return codes[0]
    return "\n\n".join(
        f"# --- inserted block {i} of {len(codes)} ---\n{code}" for i, code in enumerate(codes, 1)
    )


def _offers_a_cell_already(shell: Any) -> bool:
    payloads = getattr(getattr(shell, "payload_manager", None), "_payload", None) or []
    return any(p.get("source") == "set_next_input" for p in payloads if isinstance(p, dict))
