"""%%mistral --tools / --tool-choice through a real ipykernel, against the stub."""

from __future__ import annotations

import queue
import threading

import pytest

from tests.kernel import Kernel, stub_kernel
from tests.stub import Reply, StubServer, ToolCallSpec


@pytest.fixture(scope="module")
def stub():
    with StubServer() as server:
        yield server


@pytest.fixture(scope="module")
def kernel(stub):
    with stub_kernel(
        stub,
        "%load_ext mistral_magic\n"
        "%config Mistral.max_retries = 0\n"
        "import pandas as pd\n"
        "from mistral_magic import tool\n"
        "sales = pd.DataFrame({'region': ['north', 'south'], 'revenue': [10.5, 20.0]})\n"
        "sent = []\n"
        "@tool(confirm=True)\n"
        "def send_report(to: str) -> str:\n"
        "    '''Email the sales report.\n\n    Args:\n        to: the address.\n    '''\n"
        "    sent.append(to)\n"
        "    return 'sent to ' + to\n",
    ) as k:
        yield k


@pytest.fixture(autouse=True)
def fresh(stub, kernel):
    stub.reset()
    kernel.execute("%mistral reset\nsent.clear()")
    yield


def answer_stdin(kernel: Kernel, reply: str) -> tuple[threading.Thread, list[str]]:
    """Answer the kernel's next input request (an ``input()`` prompt) with ``reply``."""
    prompts: list[str] = []

    def work() -> None:
        try:
            message = kernel.client.get_stdin_msg(timeout=30)
        except queue.Empty:
            return
        prompts.append(message["content"]["prompt"])
        kernel.client.input(reply)

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    return thread, prompts


def test_tools_show_as_lines_with_folded_results(stub, kernel):
    stub.queue(
        Reply(
            tool_calls=[
                ToolCallSpec("describe_variable", {"name": "sales"}),
                ToolCallSpec("column_stats", {"name": "sales", "column": "revenue"}),
            ]
        ),
        Reply(text="South sells **twice** as much as north."),
    )
    run = kernel.execute("%%mistral --tools notebook\nCompare the regions")
    assert run.status == "ok", run.reply
    describe, stats, answer = run.markdown
    assert describe.startswith('<details><summary>🔧 <code>describe_variable(name="sales")</code>')
    assert "revenue" in describe and "</details>" in describe
    assert 'column_stats(name="sales", column="revenue")' in stats and "mean" in stats
    assert answer.startswith("South sells **twice**")
    assert "2 tool calls" in answer
    first, second = stub.chat_requests
    assert len(first.body["tools"]) == 7 and "tool_choice" not in first.body
    assert [m["role"] for m in second.body["messages"]][-3:] == ["assistant", "tool", "tool"]


def test_tool_choice_flag_and_user_tool_with_confirmation_by_input(stub, kernel):
    stub.queue(
        Reply(tool_calls=[ToolCallSpec("send_report", {"to": "boss@example.com"})]),
        Reply(text="Report sent."),
    )
    thread, prompts = answer_stdin(kernel, "y")
    run = kernel.execute("%%mistral --tools send_report --tool-choice any\nSend the report")
    thread.join(5)
    assert run.status == "ok", run.reply
    assert prompts == ['Mistral wants to run send_report(to="boss@example.com"). Allow? [y/N] ']
    assert kernel.execute("print(sent)").stdout.strip() == "['boss@example.com']"
    first, second = stub.chat_requests
    assert first.body["tool_choice"] == "any" and second.body["tool_choice"] == "auto"
    assert second.body["messages"][-1]["content"] == "sent to boss@example.com"


def test_declined_confirmation_is_reported_to_the_model_and_shown(stub, kernel):
    stub.queue(
        Reply(tool_calls=[ToolCallSpec("send_report", {"to": "all@example.com"})]),
        Reply(text="I did not send it."),
    )
    thread, _ = answer_stdin(kernel, "n")
    run = kernel.execute("%%mistral --tools all\nSend the report to everyone")
    thread.join(5)
    assert run.status == "ok", run.reply
    assert kernel.execute("print(sent)").stdout.strip() == "[]"
    assert "declined" in run.markdown[0]
    assert "The user declined" in stub.chat_requests[1].body["messages"][-1]["content"]


def test_unknown_tools_and_stray_tool_choice_are_usage_errors(stub, kernel):
    run = kernel.execute("%%mistral --tools nope\nHi")
    assert "Unknown tool(s) nope" in run.stderr + str(run.reply)
    run = kernel.execute("%%mistral --tool-choice any\nHi")
    assert "needs tools" in run.stderr + str(run.reply)
    assert stub.chat_requests == []


def test_tools_subcommand_lists_builtin_and_user_tools(kernel):
    listing = kernel.execute("%mistral tools").markdown[0]
    assert "`get_last_error` | notebook" in listing
    assert "`send_report` | asks first | Email the sales report." in listing
