"""Widget building blocks without a kernel: Markdown to HTML, cell insertion, a reply's
life (stream, stop, failure) with a scripted assistant."""

from __future__ import annotations

import threading
import time
from types import SimpleNamespace
from typing import Any

import pytest

from mistral_magic.faces.cell_insert import INSERTED, QUEUED, CellInserter
from mistral_magic.faces.markdown_html import markdown_to_html
from mistral_magic.faces.render import CodeBlock, Prose, split_segments


def test_markdown_is_rendered_and_raw_html_escaped():
    html = markdown_to_html(
        "**bold** <script>alert(1)</script> [x](javascript:alert(1))\n\n"
        "| a | b |\n|---|---|\n| 1 | 2 |\n\n```python\nif x < 2:\n    print('hi')\n```"
    )
    assert "<strong>bold</strong>" in html
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert "javascript:" not in html
    assert "<table>" in html
    assert 'class="mm-copy"' in html  # Copy button on the code block
    assert "<textarea hidden readonly>if x &lt; 2:" in html  # the exact code, for copying
    assert "style=" in html and "print" in html  # highlighted with inline colours


def test_segments_split_prose_and_closed_code_blocks():
    text = "Intro\n\n```python\nx = 1\n```\nMiddle\n~~~bash\nls\n~~~\n\n```py\nunclosed"
    assert split_segments(text) == [
        Prose("Intro\n"),
        CodeBlock("python", "x = 1"),
        Prose("Middle"),
        CodeBlock("bash", "ls"),
        Prose("\n```py\nunclosed"),
    ]


class FakeShell:
    def __init__(self) -> None:
        self.payload_manager = SimpleNamespace(_payload=[])
        self.events = SimpleNamespace(
            callbacks=[],
            register=lambda name, f: self.events.callbacks.append(f),
            unregister=lambda name, f: self.events.callbacks.remove(f),
        )
        self.next_inputs: list[str] = []

    def set_next_input(self, text: str, replace: bool = False) -> None:
        self.next_inputs.append(text)
        self.payload_manager._payload.append({"source": "set_next_input", "text": text})


def test_queued_code_goes_to_the_next_cell_that_offers_none_itself():
    shell = FakeShell()
    inserter = CellInserter(shell)
    assert inserter.insert("a = 1") == QUEUED
    assert inserter.insert("b = 2") == QUEUED
    shell.payload_manager._payload.append({"source": "set_next_input", "text": "from %%mistral"})
    inserter.post_run_cell()  # this cell already offers a cell: wait
    assert shell.next_inputs == []
    shell.payload_manager._payload.clear()
    inserter.post_run_cell()
    assert shell.next_inputs == [
        "# --- inserted block 1 of 2 ---\na = 1\n\n# --- inserted block 2 of 2 ---\nb = 2"
    ]
    inserter.post_run_cell()
    assert len(shell.next_inputs) == 1
    inserter.close()
    assert shell.events.callbacks == []


def test_a_ready_frontend_gets_the_code_at_once():
    shell = FakeShell()
    inserter = CellInserter(shell)
    sent: list[dict[str, Any]] = []
    comm = SimpleNamespace(send=sent.append, on_msg=lambda f: None, on_close=lambda f: None)
    inserter._frontend_opened(comm, {})
    assert inserter.insert("c = 3") == INSERTED
    assert sent == [{"action": "insert_cell", "code": "c = 3"}]
    inserter._on_close({})
    assert inserter.insert("d = 4") == QUEUED


def test_a_reloaded_page_takes_the_comm_over():
    """The page that reopens the comm gets the code; the replaced comm's close changes
    nothing."""
    inserter = CellInserter(FakeShell())
    comms = []
    for _ in range(2):
        comm = SimpleNamespace(sent=[], closed=False, close_callback=None)
        comm.send = comm.sent.append
        comm.on_msg = lambda f: None
        comm.on_close = lambda f, comm=comm: setattr(comm, "close_callback", f)
        comm.close = lambda comm=comm: setattr(comm, "closed", True)
        inserter._frontend_opened(comm, {})
        comms.append(comm)
    old, new = comms
    assert old.closed and not new.closed
    old.close_callback({})  # the old page's close arrives late
    assert inserter.insert("e = 5") == INSERTED
    assert new.sent == [{"action": "insert_cell", "code": "e = 5"}] and old.sent == []
    new.close_callback({})
    assert inserter.insert("f = 6") == QUEUED


class ScriptedAssistant:
    """Streams ``chunks``; waits on ``gate`` between them if given; or raises ``error``."""

    def __init__(self, chunks: list[str], gate: threading.Event | None = None, error=None):
        self.chunks, self.gate, self.error = chunks, gate, error
        self.recorded: list[str] = []

    def answer(
        self,
        prepared: Any,
        on_text: Any,
        on_tool: Any = None,
        confirm: Any = None,
        on_thinking: Any = None,
        *,
        confirmed: bool = False,
    ) -> Any:
        text = ""
        for chunk in self.chunks:
            text += chunk
            on_text(text)
            if self.gate is not None:
                self.gate.wait(5)
        if self.error is not None:
            raise self.error
        return SimpleNamespace(content=text)

    def record(self, prepared: Any, completion: Any, remember: bool, **about: Any) -> dict:
        self.recorded.append(completion.content)
        return {}  # the reply's provenance (the session's; none here)

    def footer(self, prepared: Any, completion: Any) -> str:
        return "model · 1 → 2 tokens"


@pytest.fixture
def widgets():
    pytest.importorskip("ipywidgets")
    from mistral_magic.faces import widgets

    return widgets


def test_a_reply_ends_with_its_segments_and_footer(widgets):
    assistant = ScriptedAssistant(["Use:\n```python\nx = 1\n```\n", "Done."])
    reply = widgets.ReplyView(assistant, CellInserter(FakeShell()))
    reply.start(SimpleNamespace())
    assert reply.wait(5)
    assert reply.status == widgets.DONE
    assert reply.text == "Use:\n```python\nx = 1\n```\nDone."
    values = [getattr(c, "value", "") for c in reply.children]
    assert "Use:" in values[0] and "x = 1" in values[1] and "Done." in values[3]
    assert "model · 1 → 2 tokens" in values[-1]
    insert_row = reply.children[2]
    assert insert_row.children[0].description == "Insert as new cell"
    assert assistant.recorded == [reply.text]


def test_stop_keeps_the_partial_reply_and_ignores_the_rest(widgets):
    gate = threading.Event()
    assistant = ScriptedAssistant(["Partial ", "and more"], gate=gate)
    reply = widgets.ReplyView(assistant, CellInserter(FakeShell()))
    reply.start(SimpleNamespace())
    deadline = time.monotonic() + 5
    while not reply.text and time.monotonic() < deadline:
        time.sleep(0.001)
    reply.stop()
    gate.set()
    assert reply.wait(1) and reply.status == widgets.STOPPED
    assert reply.text == "Partial "
    assert "stopped" in reply.children[-1].value
    assert assistant.recorded == []


def test_a_failed_request_says_why_and_keeps_the_text(widgets):
    from mistral_magic.api.errors import MistralError

    assistant = ScriptedAssistant(["Half"], error=MistralError("The server went away."))
    reply = widgets.ReplyView(assistant, CellInserter(FakeShell()))
    reply.start(SimpleNamespace())
    assert reply.wait(5) and reply.status == widgets.FAILED
    assert "Half" in reply.children[0].value
    assert "The server went away." in reply.children[-1].value
    assert "incomplete" in reply.children[-1].value
