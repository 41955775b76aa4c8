"""The chat panel through a real ipykernel, against the stub."""

from __future__ import annotations

import json
import re

import pytest

from mistral_magic.faces.markdown_stream import HARD_BLOCK_CHARS
from tests.kernel import Kernel, stub_kernel
from tests.stub import Reply, StubServer
from tests.widget_comm import click_widget, send_comm, widget_displays, widget_values

CODE_REPLY = """Count the rows per region:

```python
sales.groupby("region").size()
```

That is all."""


@pytest.fixture(scope="module")
def stub():
    with StubServer() as server:
        yield server


@pytest.fixture(scope="module")
def kernel(stub):
    with stub_kernel(
        stub,
        "import mistral_magic, pandas as pd\n"
        "sales = pd.DataFrame({'region': ['north', 'south', 'north'], 'revenue': [1, 2, 3]})",
    ) as k:
        yield k


@pytest.fixture
def panel(stub, kernel):
    """A fresh panel in variable ``panel`` (the shared conversation reset)."""
    stub.reset()
    run = kernel.execute("panel = mistral_magic.chat()\npanel.session.conversation.reset()")
    assert run.status == "ok", run.reply
    return run


def ask(kernel: Kernel, text: str) -> str:
    """Type ``text``, click Send, wait for the reply; returns what the kernel printed."""
    run = kernel.execute(
        f"panel.input.value = {text!r}\n"
        "panel.send_button.click()\n"
        "assert panel.wait(30)\n"
        "print(json.dumps([panel.current.status, panel.messages[-1]['text']]))",
    )
    assert run.status == "ok", run.reply
    return run


def test_chat_shows_one_panel_with_a_text_fallback(kernel, panel):
    (bundle,) = widget_displays(panel.messages)
    assert "chat panel" in bundle["text/plain"]  # what a front end without widgets shows
    again = kernel.execute("mistral_magic.chat()")  # the returned panel is not shown twice
    assert len(widget_displays(again.messages)) == 1
    assert again.result is None


def test_a_streamed_reply_ends_up_whole_in_the_widgets(stub, kernel, panel):
    kernel.execute("import json")
    stub.queue(Reply(text=CODE_REPLY))
    stub.token_delay = 0.01
    try:
        run = ask(kernel, "How many rows per region in sales?")
    finally:
        stub.token_delay = 0
    status, text = json.loads(run.stdout)
    assert (status, text) == ("done", CODE_REPLY)
    values = widget_values(run.messages)
    # it streamed: the reply's HTML grew in place before the final view was built
    streaming = [v for v in values if "▌" in v]
    assert len(streaming) >= 2
    # the final widgets hold the whole text: prose, highlighted code with Copy, prose
    final = "".join(v for v in values if "▌" not in v)
    assert "Count the rows per region" in final and "That is all." in final
    assert "groupby" in final and "mm-copy" in final
    assert "mistral-large-2407" in final and "tokens" in final  # the footer line
    # the kernel side agrees
    html = kernel.execute(
        "print(''.join(c.value for c in panel.current.children if hasattr(c, 'value')))"
    ).stdout
    assert "That is all." in html
    # the request carried the notebook's context, like the magic's
    (request,) = stub.chat_requests
    system = request.body["messages"][0]["content"]
    assert "region" in system and "revenue" in system
    assert request.body["messages"][-1]["content"] == "How many rows per region in sales?"


def test_the_panel_and_the_magic_share_one_conversation(stub, kernel, panel):
    kernel.execute("import json")
    stub.queue(Reply(text="Three rows."), Reply(text="North has two."))
    ask(kernel, "How many rows?")
    kernel.execute("%%mistral --no-context\nAnd in the north?")
    messages = stub.chat_requests[1].body["messages"]
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user"]
    assert messages[2]["content"] == "Three rows."
    kernel.execute("panel.new_button.click()")
    stub.queue(Reply(text="Hello."))
    ask(kernel, "Hi")
    assert len(stub.chat_requests[2].body["messages"]) == 2


def test_enter_sends_and_a_second_send_while_streaming_is_refused(stub, kernel, panel):
    stub.queue(Reply(text=" ".join(f"w{i}" for i in range(300))))
    stub.token_delay = 0.02
    try:
        run = kernel.execute(
            "import time\n"
            # what Enter does in the browser (frontend.js): the value, then a send message
            "panel.input._handle_custom_msg({'type': 'send', 'text': 'First question'}, [])\n"
            "deadline = time.monotonic() + 20\n"  # until some text has streamed in
            "while not panel.current.text and time.monotonic() < deadline:\n"
            "    time.sleep(0.02)\n"
            "panel.input.value = 'Second question'\n"
            "refused = panel.send()\n"
            "print(refused is None, panel.input.value)\n"
            "print(panel.status.value)\n"
            "panel.stop_button.click()\n"
            "print(panel.current.status, len(panel.current.text) > 0)\n"
        )
    finally:
        stub.token_delay = 0
    lines = run.stdout.splitlines()
    assert lines[0] == "True Second question"  # refused, and the text stays in the box
    assert "still streaming" in lines[1]
    assert lines[2] == "stopped True"  # Stop keeps the partial answer
    assert len(stub.chat_requests) == 1
    assert stub.chat_requests[0].body["messages"][-1]["content"] == "First question"
    after = kernel.execute("print(panel.send_button.disabled, panel.status.value)")
    assert after.stdout.startswith("False") and "Stopped" in after.stdout


def test_no_widget_carries_script_in_its_html(stub, kernel, panel):
    """The panel's keys and Copy buttons are frontend.js (anywidget), not handlers in HTML
    attributes: front ends with strict policies drop those, and a reply must never be able to
    smuggle one in."""
    stub.queue(Reply(text=CODE_REPLY))
    ask(kernel, "Rows per region?")
    run = kernel.execute(
        "import re, ipywidgets as w\n"
        "def walk(x):\n"
        "    yield x\n"
        "    for c in getattr(x, 'children', ()):\n"
        "        yield from walk(c)\n"
        "found = list(walk(panel))\n"
        "html = [x.value for x in found if isinstance(x, w.HTML)]\n"
        "live = [h for h in html if re.search(r'<script|\\son[a-z]+\\s*=', h, re.I)]\n"
        "kinds = sorted({getattr(x, 'kind', '') for x in found} - {''})\n"
        "print(json.dumps([len(live), kinds, any('mm-copy' in h for h in html)]))"
    )
    assert run.status == "ok", run.reply
    assert json.loads(run.stdout) == [0, ["behaviour", "message_box"], True]


def test_insert_as_new_cell_is_queued_for_the_next_cell(stub, kernel, panel):
    kernel.execute("import json")
    stub.queue(Reply(text=CODE_REPLY))
    ask(kernel, "Rows per region?")
    button = kernel.execute(
        "rows = [c for c in panel.current.children if hasattr(c, 'children')]\n"
        "print(rows[0].children[0].model_id)"
    )
    click_widget(kernel, button.stdout.strip())  # a real click: outside any execution
    nxt = kernel.execute("print(panel.status.value)")  # the next cell the user runs
    assert "queued" in nxt.stdout and "next cell you run" in nxt.stdout
    assert nxt.next_input == 'sales.groupby("region").size()'
    assert kernel.execute("pass").next_input is None


def test_insert_goes_through_the_labextension_comm_when_it_answers(stub, kernel, panel):
    opened = [
        m["content"]
        for m in panel.messages
        if m["msg_type"] == "comm_open" and m["content"]["target_name"] == "mistral_magic"
    ]
    comm_id = (
        opened[0]["comm_id"]
        if opened
        else kernel.execute("print(panel.inserter._comm.comm_id)").stdout.strip()
    )
    send_comm(kernel, comm_id, {"action": "ready"})  # the labextension says hello back
    kernel.execute("import json")
    stub.queue(Reply(text=CODE_REPLY))
    ask(kernel, "Rows per region?")
    button = kernel.execute(
        "rows = [c for c in panel.current.children if hasattr(c, 'children')]\n"
        "print(rows[0].children[0].model_id)"
    ).stdout.strip()
    sent: list[dict] = []
    original = kernel.client.get_iopub_msg

    def recording(*args, **kwargs):
        msg = original(*args, **kwargs)
        if msg["msg_type"] == "comm_msg" and msg["content"]["comm_id"] == comm_id:
            sent.append(msg["content"]["data"])
        return msg

    kernel.client.get_iopub_msg = recording
    try:
        click_widget(kernel, button)
    finally:
        kernel.client.get_iopub_msg = original
    [message] = sent
    assert message["action"] == "insert_cell"
    assert message["code"] == 'sales.groupby("region").size()'
    # the new cell's metadata: the reply's provenance, with the hash of the code inserted
    from mistral_magic.engine.provenance import code_hash

    tag = message["metadata"]["mistral"]
    assert tag["face"] == "chat panel" and tag["question"] == "Rows per region?"
    assert tag["code_sha256"] == code_hash(message["code"])
    assert kernel.execute("pass").next_input is None  # nothing queued
    kernel.execute("panel.inserter._ready = False")  # back to the queue for other tests


def test_the_context_toggle_shows_what_goes_with_the_next_message(kernel, panel):
    run = kernel.execute(
        "panel.input.value = 'total revenue of sales?'\n"
        "panel.context_toggle.value = True\n"
        "print(panel.context_view.value)"
    )
    shown = run.stdout
    assert "With your next message" in shown
    assert "Notebook context" in shown and "revenue" in shown and "prompt tokens" in shown
    kernel.execute("panel.context_toggle.value = False")


def test_percent_mistral_chat_shows_the_panel(kernel):
    kernel.execute("%load_ext mistral_magic")
    run = kernel.execute("%mistral chat")
    assert run.status == "ok"
    assert len(widget_displays(run.messages)) == 1


def test_the_tools_switch_lets_the_model_look_and_shows_each_call(stub, kernel, panel):
    from tests.stub import ToolCallSpec

    kernel.execute("import json")
    stub.queue(
        Reply(tool_calls=[ToolCallSpec("describe_variable", {"name": "sales"})]),
        Reply(text="sales has two columns."),
    )
    kernel.execute("panel.tools_box.value = 'notebook'")
    run = ask(kernel, "What is in sales?")
    status, text = json.loads(run.stdout)
    assert (status, text) == ("done", "sales has two columns.")
    first, second = stub.chat_requests
    assert "describe_variable" in {t["function"]["name"] for t in first.body["tools"]}
    tool_message = second.body["messages"][-1]
    assert tool_message["role"] == "tool" and "revenue" in tool_message["content"]
    shown = kernel.execute("print(panel.current.tools_view.value)").stdout
    assert "describe_variable" in shown and "sales" in shown


def test_a_bad_tools_value_is_explained_and_nothing_is_sent(stub, kernel, panel):
    run = kernel.execute(
        "panel.tools_box.value = 'no_such_tool'\n"
        "panel.input.value = 'Hi'\n"
        "panel.send_button.click()\n"
        "print(panel.status.value)\n"
        "panel.tools_box.value = ''"
    )
    assert "no_such_tool" in run.stdout
    assert stub.chat_requests == []


HOSTILE = (
    "Done. <img src=x onerror=\"fetch('/api/contents/PWNED.txt',{method:'PUT'})\">"
    "<script>document.title='PWNED'</script> [click](javascript:alert(1))\n\n"
    "| a | b |\n|---|---|\n| <b onmouseover=alert(1)>1</b> | 2 |\n"
)
# live markup: a tag with an event handler, a script, or a javascript: URL in an attribute
# (the words of a half-streamed "[click](javascript:" shown as text are harmless)
LIVE = re.compile(
    r"<(img|script|b|details)\b[^>]*\bon\w+=|<script|=\s*[\"']?\s*javascript:", re.IGNORECASE
)


def test_a_hostile_reply_and_tool_call_show_as_text_in_the_panel(stub, kernel, panel):
    from tests.stub import ToolCallSpec

    kernel.execute("import json")
    hostile_name = "<img src=x onerror=alert(1)>"
    stub.queue(
        Reply(tool_calls=[ToolCallSpec("describe_variable", {"name": hostile_name})]),
        Reply(text=HOSTILE),
    )
    stub.token_delay = 0.002
    kernel.execute("panel.tools_box.value = 'notebook'")
    try:
        run = ask(kernel, "Chart?")
    finally:
        stub.token_delay = 0
        kernel.execute("panel.tools_box.value = ''")
    status, text = json.loads(run.stdout)
    assert (status, text) == ("done", HOSTILE.strip())
    values = widget_values(run.messages)  # every value sent while streaming and after
    assert any("&lt;img src=x onerror=" in v for v in values)
    assert not [v for v in values if LIVE.search(v)]
    tools = kernel.execute("print(panel.current.tools_view.value)").stdout
    assert "<details>" in tools and "&lt;img src=x onerror=alert(1)&gt;" in tools
    assert not LIVE.search(tools)


def test_a_long_reply_updates_only_its_last_block(stub, kernel, panel):
    kernel.execute("import json")
    paragraph = "Revenue grows in the north while the south stays flat. " * 8
    text = "\n\n".join(f"{i}. {paragraph}" for i in range(300))  # ~135 kB
    stub.queue(Reply(text=text, chunks=[text[i : i + 120] for i in range(0, len(text), 120)]))
    stub.token_delay = 0.001
    kernel.execute("%config Mistral.max_tokens = None")
    try:
        run = ask(kernel, "A long answer")
    finally:
        stub.token_delay = 0
        kernel.execute("%config Mistral.max_tokens = 2048")
    assert json.loads(run.stdout)[0] == "done"
    streamed = [v for v in widget_values(run.messages) if "▌" in v]
    assert len(streamed) >= 10
    assert max(len(v) for v in streamed) < 3 * HARD_BLOCK_CHARS  # one block of HTML each
    while_streaming = sum(len(v) for v in streamed)
    assert while_streaming < 4 * len(text)  # not the whole reply again on every update


def test_thinking_is_collapsed_under_the_answer_and_never_sent_back(stub, kernel, panel):
    kernel.execute("import json\npanel.model = 'magistral-medium-latest'")
    stub.queue(Reply(text="It is 144.", thinking="Twelve <b>twelves</b> make 144."))
    status, text = json.loads(ask(kernel, "12 * 12?").stdout)
    assert (status, text) == ("done", "It is 144.")
    shown = kernel.execute(
        "print(json.dumps([c.value for c in panel.current.children if hasattr(c, 'value')]))"
    ).stdout
    values = json.loads(shown)
    answer = next(i for i, v in enumerate(values) if "It is 144." in v)
    thinking = next(i for i, v in enumerate(values) if "mm-thinking" in v)
    assert answer < thinking  # under the answer
    assert values[thinking].startswith('<details class="mm-thinking"><summary>')
    assert "<details open" not in values[thinking]
    assert "&lt;b&gt;twelves" in values[thinking] or "&lt;b>twelves" in values[thinking]
    assert "<b>twelves" not in values[thinking]
    stub.queue(Reply(text="169."))
    ask(kernel, "And 13 * 13?")
    turns = stub.chat_requests[-1].body["messages"][1:]  # (the context shows this test's cells)
    assert [m["content"] for m in turns] == ["12 * 12?", "It is 144.", "And 13 * 13?"]


def test_tools_refused_in_the_panel_for_a_model_that_cannot_call_them(stub, kernel, panel):
    run = kernel.execute(
        "panel.model = 'open-mistral-7b'\n"
        "panel.tools_box.value = 'notebook'\n"
        "panel.input.value = 'What is in sales?'\n"
        "panel.send_button.click()\n"
        "print(panel.status.value)\n"
        "panel.model = None\n"
        "panel.tools_box.value = ''"
    )
    assert "open-mistral-7b cannot call tools" in run.stdout
    assert stub.chat_requests == []
