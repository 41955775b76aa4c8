"""The chat panel streams on its own thread while the kernel's main thread goes on: a
settings change there never closes the client under the panel's reply, and the session's
conversation and usage take both threads' updates."""

from __future__ import annotations

import sys
import threading

import pytest
from IPython import get_ipython
from IPython.testing.globalipapp import start_ipython

from mistral_magic.config import Mistral
from mistral_magic.session import Session
from tests.stub import Reply

WAIT = 30  # seconds: an upper bound for events that normally take milliseconds


@pytest.fixture
def session(stub_env, monkeypatch):
    pytest.importorskip("ipywidgets")
    monkeypatch.setenv("MISTRAL_DIALECT", "mistral")
    shell = start_ipython() or get_ipython()  # one global test shell per process
    made = Session(Mistral(max_retries=0), shell)
    yield made
    made.close()


def paused_after_first_text(session: Session) -> tuple[threading.Event, threading.Event]:
    """Make the panel's reply stop after its first text (the client's response open) until
    ``resume`` is set; ``streaming`` is set when it got there."""
    streaming, resume = threading.Event(), threading.Event()
    answer = session.answer

    def gated(prepared, on_text, **kwargs):
        def first_then_wait(text: str) -> None:
            on_text(text)
            if not streaming.is_set():
                streaming.set()
                assert resume.wait(WAIT), "the test never resumed the stream"

        return answer(prepared, on_text=first_then_wait, **kwargs)

    session.answer = gated  # type: ignore[method-assign]
    return streaming, resume


def test_changing_a_setting_mid_stream_keeps_the_panels_reply_going(stub_env, session):
    from mistral_magic.faces.chat import ChatPanel
    from mistral_magic.faces.widgets import DONE

    stub_env.queue(Reply(chunks=["Counting: ", "one, ", "two, ", "three."]))
    stub_env.queue(Reply(text="Second answer."))
    panel = ChatPanel(session)
    streaming, resume = paused_after_first_text(session)
    reply = panel.send("Count to three")
    assert reply is not None and streaming.wait(WAIT)
    streaming_client = session.clients.current()

    # the main thread meanwhile: a new setting, and a magic-style question on a new client
    session.settings.timeout = 77.0
    prepared = session.prepare("Another question", sources=())
    texts: list[str] = []
    second = session.answer(prepared, on_text=texts.append)
    session.record(prepared, second, remember=True)
    assert second.content == "Second answer."
    assert session.clients.current() is not streaming_client
    assert session.clients.retired == 1  # kept open for the panel

    resume.set()
    assert panel.wait(WAIT)
    assert reply.status == DONE, reply.problem
    assert reply.text == "Counting: one, two, three."
    assert session.clients.retired == 0  # closed once the panel's reply ended
    turns = [(t.user, t.assistant) for t in session.conversation.snapshot()]
    assert ("Another question", "Second answer.") in turns
    assert ("Count to three", "Counting: one, two, three.") in turns
    assert sum(t.requests for t in session.ledger.by_model.values()) == 2


def test_usage_and_turns_from_many_threads_are_all_counted(session):
    from types import SimpleNamespace

    from mistral_magic.api.types import Usage
    from mistral_magic.engine.prepare import WireTarget, prepare

    # a real request: recording keeps its provenance (the body's hash, labels, parameters)
    target = WireTarget("http://127.0.0.1:1/v1", "mistral")
    prepared = prepare("q", model="mistral-large-2407", target=target, settings=session.settings)
    done = SimpleNamespace(
        id="r1", model="mistral-large-2407", content="a", usage=Usage(1, 2, 3), finish_reason="stop"
    )
    start = threading.Barrier(8)

    def record_many() -> None:
        start.wait(WAIT)
        for _ in range(500):
            session.record(prepared, done, remember=True)

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as possible
    try:
        threads = [threading.Thread(target=record_many) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(WAIT)
    finally:
        sys.setswitchinterval(interval)
    tally = session.ledger.by_model["mistral-large-2407"]
    assert tally.requests == 4000 and tally.prompt_tokens == 4000
    assert len(session.conversation.snapshot()) == 4000


def test_the_warm_up_loads_the_tokenizer_once_the_first_answer_is_in(session, monkeypatch):
    """Issue #12: the first question after %load_ext needs no tokenizer when its context fits
    by far, and a load racing it under the GIL would only slow it: the warm-up loads it after
    the first answer (or after TOKENIZER_WARM_UP_AFTER seconds without one)."""
    import mistral_magic.context.budget as budget
    import mistral_magic.session as session_module

    monkeypatch.setattr(session_module, "TOKENIZER_WARM_UP_AFTER", 3600.0)
    imported, loaded = threading.Event(), []
    monkeypatch.setattr(budget, "warm_up", lambda model: loaded.append(model))
    thread = session.warm_up(imported.set)
    assert imported.wait(WAIT)
    assert loaded == []  # not before an answer
    prepared = session.prepare("Say hello", sources=())
    session.record(prepared, session.answer(prepared, on_text=lambda _: None), remember=False)
    thread.join(WAIT)
    assert not thread.is_alive()
    assert loaded == [session.capabilities().canonical or session.settings.model]
