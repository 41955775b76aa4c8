"""%%mistral through a real ipykernel, talking to the stub over a real socket."""

from __future__ import annotations

import base64
import json
import re
import socket

import mistune
import pytest

from mistral_magic.faces.markdown_stream import HARD_BLOCK_CHARS
from mistral_magic.kernel_entry import SNIPPET
from tests.kernel import stub_kernel
from tests.stub import CaptureReplay, Fault, Reply, StubServer, ToolCallSpec

CODE_REPLY = """Sum revenue per region and month, then plot it:

```python
import matplotlib.pyplot as plt
sales.groupby(["month", "region"])["revenue"].sum().unstack().plot.bar()
plt.show()
```

Shell, for reference (not inserted):

```bash
pip install matplotlib
```
"""

SECRET_VALUE = "sk-proj-THISMUSTNEVERLEAVE1234567890"


@pytest.fixture(scope="module")
def stub():
    with StubServer() as server:
        yield server


@pytest.fixture(scope="module")
def kernel(stub):
    with stub_kernel(
        stub,
        "%load_ext mistral_magic\n"
        "%config Mistral.max_retries = 1\n"
        "import pandas as pd\n"
        "sales = pd.DataFrame({'month': ['2024-01', '2024-02'] * 3,"
        " 'region': ['north', 'south', 'east'] * 2, 'revenue': [10.5, 20.0, 5.25] * 2})\n"
        f"openai_api_key = {SECRET_VALUE!r}\n"
        f"notes = 'the key is {SECRET_VALUE}'\n",
    ) as k:
        yield k


@pytest.fixture(autouse=True)
def fresh(stub, kernel):
    stub.reset()
    kernel.execute("%mistral reset")
    yield


HOSTILE = (
    "Done. <img src=x onerror=\"fetch('/api/contents/PWNED.txt',{method:'PUT',"
    "body:JSON.stringify({type:'file',format:'text',content:'x'})})\">"
    "<script>document.title='PWNED'</script>\n\n"
    "| a | b |\n|---|---|\n| <b onmouseover=alert(1)>1</b> | 2 |\n"
)
_RAW_HTML_RENDERER = mistune.create_markdown(escape=False, plugins=["table", "strikethrough"])
_LIVE = re.compile(r"<(img|script|b|details|svg|iframe)\b[^>]*\bon\w+=|<script", re.IGNORECASE)


def live_markup(markdown: str) -> list[str]:
    """Tags with event handlers (or scripts) that ``markdown`` gives when a renderer passes
    raw HTML through, as JupyterLab does for a kernel's own (trusted) outputs."""
    return _LIVE.findall(_RAW_HTML_RENDERER(markdown))


def system_text(request) -> str:
    return request.body["messages"][0]["content"]


def test_answer_streams_as_markdown_and_code_goes_to_a_new_cell(stub, kernel):
    failing = kernel.execute("ratio = sales['revenue'].sum() / 0\nsales['profit']")
    assert failing.status == "error"
    stub.queue(Reply(text=CODE_REPLY))
    stub.token_delay = 0.002
    run = kernel.execute(
        "%%mistral\nPlot monthly revenue from sales as a bar chart, one bar per region"
    )
    assert run.status == "ok", run.reply
    (request,) = stub.chat_requests
    sent = json.dumps(request.body)
    system = system_text(request)
    # the dataframe's real columns and the last error travel with the question
    for column in ("month", "region", "revenue"):
        assert column in system
    assert "KeyError" in system and "profit" in system
    assert request.body["messages"][-1]["content"].startswith("Plot monthly revenue")
    # no secret leaves the kernel: not the secret variable, not a value matching a pattern,
    # not the API key
    assert SECRET_VALUE not in sent
    assert "openai_api_key: str" not in sent  # the secret variable is never described
    assert "openai_api_key = '[REDACTED]'" in sent  # and its value is redacted from cells
    assert stub.api_key not in sent
    # the reply is shown as Markdown, updated in place while it streams
    final = run.markdown[-1]
    assert final.startswith(CODE_REPLY.strip()[:40])
    assert "code added as a new cell below" in final
    assert run.updates >= 1
    # only the Python block is offered, and nothing ran it
    assert run.next_input.strip() == (
        "import matplotlib.pyplot as plt\n"
        'sales.groupby(["month", "region"])["revenue"].sum().unstack().plot.bar()\n'
        "plt.show()"
    )
    assert "pip install" not in run.next_input


def test_dry_run_shows_the_exact_request_and_sends_nothing(stub, kernel):
    question = "%%mistral --max-tokens 100 --no-insert\nWhat columns does sales have?"
    run = kernel.execute(question.replace("%%mistral", "%%mistral --dry-run"))
    assert run.status == "ok"
    assert stub.chat_requests == []
    (report,) = run.markdown
    assert "Dry run" in report and "prompt tokens" in report and "(exact)" in report
    assert "What columns does sales have?" in report
    assert "sales" in report and SECRET_VALUE not in report
    shown = json.loads(report.split("````json\n", 1)[1].rsplit("\n````", 1)[0])
    # asked right after, the same question goes out exactly as the dry run showed it
    assert kernel.execute(question).status == "ok"
    assert stub.chat_requests[0].body == shown


def test_no_context_sends_the_question_alone(stub, kernel):
    kernel.execute("%%mistral --no-context --no-insert\nHello")
    (request,) = stub.chat_requests
    assert "revenue" not in system_text(request)


def test_placeholder_expands_a_variable_and_leaves_json_alone(stub, kernel):
    kernel.execute('%%mistral --no-context\nDescribe {sales} and keep {"a": 1} as it is')
    question = stub.chat_requests[0].body["messages"][-1]["content"]
    assert "revenue" in question and '{"a": 1}' in question and "{sales}" not in question


def test_consecutive_cells_form_a_conversation_until_reset(stub, kernel):
    stub.queue(Reply(text="First answer."), Reply(text="Second answer."))
    kernel.execute("%%mistral --no-context\nFirst question")
    kernel.execute("%%mistral --no-context\nSecond question")
    second = stub.chat_requests[1].body["messages"]
    assert [m["role"] for m in second] == ["system", "user", "assistant", "user"]
    assert second[2]["content"] == "First answer."
    kernel.execute("%%mistral --no-context --new\nAside")
    assert len(stub.chat_requests[2].body["messages"]) == 2
    kernel.execute("%mistral reset")
    kernel.execute("%%mistral --no-context\nThird question")
    assert len(stub.chat_requests[3].body["messages"]) == 2


def test_options_reach_the_request(stub, kernel):
    kernel.execute(
        "%%mistral --no-context -t 0.1 --max-tokens 64 --top-p 0.5 --seed 42"
        " -m mistral-large-latest\nHi"
    )
    body = stub.chat_requests[0].body
    assert (body["temperature"], body["max_tokens"], body["top_p"], body["random_seed"]) == (
        0.1,
        64,
        0.5,
        42,
    )
    assert body["model"] == "mistral-large-latest"


def test_json_mode_returns_the_parsed_reply_and_out_stores_it(stub, kernel):
    stub.queue(Reply(text='{"rows": 6, "columns": ["month", "region", "revenue"]}'))
    run = kernel.execute("%%mistral --json -o info --no-context\nDescribe sales as JSON")
    assert stub.chat_requests[0].body["response_format"] == {"type": "json_object"}
    assert run.result is not None and "'rows': 6" in run.result["text/plain"]
    check = kernel.execute("print(info['columns'])")
    assert check.stdout.strip() == "['month', 'region', 'revenue']"


def test_line_magic_asks_a_one_line_question(stub, kernel):
    stub.queue(Reply(text="It has 6 rows."))
    run = kernel.execute("%mistral --no-context how many rows does sales have?")
    assert stub.chat_requests[0].body["messages"][-1]["content"] == (
        "how many rows does sales have?"
    )
    assert run.markdown[-1].startswith("It has 6 rows.")


def test_usage_config_and_models_subcommands(stub, kernel):
    stub.queue(Reply(text="ok"))
    kernel.execute("%%mistral --no-context\nHi")
    usage = kernel.execute("%mistral usage").markdown[-1]
    assert "mistral-large-2407" in usage and "estimated cost" in usage
    # inline completions are the Jupyter server's: the note says where to see them
    assert "Inline completions" in usage and "Mistral sidebar" in usage
    # ... until the page passes the server's count along (with its scope read): then here too
    passed = {"requests": 2, "prompt_tokens": 900, "completion_tokens": 31, "cost": 0.0003}
    request = base64.b64encode(json.dumps({"op": "inline_usage", "usage": passed}).encode())
    kernel.execute(SNIPPET.replace("REQUEST", request.decode()))
    usage = kernel.execute("%mistral usage").markdown[-1]
    assert "2 requests, 31 completion tokens, 900 prompt tokens" in usage, usage
    config = kernel.execute("%mistral config").markdown[-1]
    assert "context_budget" in config and stub.api_key not in config
    models = kernel.execute("%mistral models").markdown[-1]
    assert "mistral-large-2407" in models and "**current**" in models


def test_interrupt_keeps_the_partial_answer(stub, kernel):
    words = " ".join(f"word{i}" for i in range(400))
    stub.queue(Reply(text=words))
    stub.token_delay = 0.02
    interrupted = []

    def interrupt_after_some_text(msg, k):
        if msg["msg_type"] == "update_display_data" and not interrupted:
            interrupted.append(True)
            k.interrupt()

    run = kernel.execute(
        "%%mistral --no-context\nCount slowly", on_message=interrupt_after_some_text
    )
    assert interrupted
    final = run.markdown[-1]
    assert final.startswith("word0 word1")
    assert "interrupted" in final
    assert "word399" not in final
    assert "Traceback" not in run.stderr


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


FAILURES = {
    "bad key": (
        "os.environ['MISTRAL_API_KEY'] = 'wrong-key-123456789'",
        None,
        "refused the API key",
    ),
    "missing key": ("os.environ.pop('MISTRAL_API_KEY')", None, "No Mistral API key"),
    "unknown model": ("", "--model mistral-huge-9000", "does not know the model"),
    "rate limit": ("", "RATE", "Rate limit reached"),
    "server down": ("", "DOWN", "Could not reach the model server"),
    "timeout": ("%config Mistral.timeout = 0.5", "SLOW", "did not answer within"),
    "context too large": ("", "CONTEXT", "too long for the model"),
}


@pytest.mark.parametrize("case", sorted(FAILURES))
def test_each_failure_is_one_clear_paragraph(stub, kernel, captures_dir, case):
    setup, option, expected = FAILURES[case]
    option = option or ""
    if option == "RATE":
        stub.queue(Fault(429, headers={"Retry-After": "0"}, times=5))
        option = ""
    elif option == "SLOW":
        stub.latency = 2.0
        option = ""
    elif option == "CONTEXT":
        stub.queue(CaptureReplay(captures_dir / "error-400-context-length-exceeded.json"))
        option = ""
    restore = "import os\n"
    if option == "DOWN":
        option = ""
        kernel.execute(f"%config Mistral.base_url = 'http://127.0.0.1:{free_port()}/v1'")
    kernel.execute(f"import os\n_saved_env = dict(os.environ)\n{setup}")
    try:
        run = kernel.execute(f"%%mistral --no-context {option}\nHello?")
    finally:
        stub.latency = 0
        kernel.execute(
            restore + "os.environ.clear(); os.environ.update(_saved_env)\n"
            f"%config Mistral.base_url = {stub.base_url!r}\n"
            "%config Mistral.timeout = 120.0"
        )
    assert run.status == "ok"
    assert expected in run.stderr
    assert "Traceback" not in run.stderr and "File " not in run.stderr
    assert len(run.stderr.strip().splitlines()) == 1
    assert stub.api_key not in run.stderr


@pytest.mark.parametrize(
    "line, message",
    [
        ("%%mistral --temperature 9\nHi", "between 0 and 1.5"),
        ("%%mistral --context cells,weather\nHi", "Unknown context source"),
        ("%%mistral\n   ", "Nothing to ask"),
        ("%%mistral --frobnicate\nHi", "unrecognized arguments"),
        ("%%mistral stray words\nHi", "Unexpected words"),
    ],
)
def test_bad_magic_arguments_are_usage_errors(stub, kernel, line, message):
    run = kernel.execute(line)
    shown = run.stderr + json.dumps(run.reply)
    assert message in shown
    assert "Traceback" not in run.stderr
    assert stub.chat_requests == []


def test_question_mark_lines_are_questions_not_help(stub, kernel):
    stub.queue(Reply(text="Six."))
    run = kernel.execute("x = 1\n%mistral --no-context what is x?")
    assert stub.chat_requests[0].body["messages"][-1]["content"] == "what is x?"
    assert run.markdown[-1].startswith("Six.")
    help_run = kernel.execute("len?")  # IPython's own help syntax still works elsewhere
    assert help_run.status == "ok" and stub.chat_requests[1:] == []


def test_map_applies_the_cell_to_each_item_in_order(stub, kernel, tmp_path):
    kernel.execute(f"%config Mistral.cache_dir = {str(tmp_path)!r}")
    run = kernel.execute(
        "%%mistral --map sales.region -o colours --no-context\nName a colour for this region:"
    )
    assert run.status == "ok", run.reply
    prompts = [r.body["messages"][-1]["content"] for r in stub.chat_requests]
    assert len(prompts) == 6
    assert sorted(prompts) == sorted(
        f"Name a colour for this region:\n\n{region}" for region in ["north", "south", "east"] * 2
    )
    check = kernel.execute(
        "print(type(colours).__name__, len(colours), list(colours.index) == list(sales.index))"
    )
    assert check.stdout.strip() == "Series 6 True"


def test_cache_answers_a_repeated_question_without_a_request(stub, kernel, tmp_path):
    kernel.execute(f"%config Mistral.cache_dir = {str(tmp_path)!r}")
    stub.queue(Reply(text="Cached answer."))
    first = kernel.execute("%%mistral --cache --new --no-context -t 0\nSame question")
    second = kernel.execute("%%mistral --cache --new --no-context -t 0\nSame question")
    assert len(stub.chat_requests) == 1
    assert second.markdown[-1].startswith("Cached answer.")
    assert "from the response cache" in second.markdown[-1]
    assert first.markdown[-1].startswith("Cached answer.")
    info = kernel.execute("%mistral cache info").markdown[-1]
    assert "| entries | 1 |" in info and str(tmp_path) in info
    kernel.execute("%mistral cache clear")
    kernel.execute("%%mistral --cache --new --no-context -t 0\nSame question")
    assert len(stub.chat_requests) == 2


def test_batch_without_map_is_a_usage_error(stub, kernel):
    run = kernel.execute("%%mistral --batch\nHi")
    assert "--batch goes with --map" in run.stderr + json.dumps(run.reply)
    assert stub.chat_requests == []


def test_map_usage_shows_in_the_session_usage(stub, kernel, tmp_path):
    kernel.execute(f"%config Mistral.cache_dir = {str(tmp_path)!r}")
    kernel.execute("items = ['a', 'b', 'c']")
    kernel.execute("%%mistral --map items --no-context\nEcho:")
    usage = kernel.execute("%mistral usage").markdown[-1]
    row = next(line for line in usage.splitlines() if line.startswith("| mistral-large-2407 |"))
    assert int(row.split("|")[2]) >= 3  # the three map requests are counted


# ------------------------------------------------------------------ model and server text


def test_a_hostile_reply_is_shown_as_text_not_html(stub, kernel):
    stub.queue(Reply(text=HOSTILE))
    run = kernel.execute("%%mistral --no-context\nMake me a chart")
    assert run.status == "ok", run.reply
    (shown,) = run.markdown
    assert live_markup(HOSTILE)  # the check sees the attack ...
    assert not live_markup(shown)  # ... and none of it is left
    assert "&lt;img src=x onerror=" in shown and "&lt;script>" in shown
    assert "| a | b |" in shown  # the table is still a table


def test_server_and_tool_text_is_shown_as_text(stub, kernel):
    hostile_id = "<img src=x onerror=alert(1)>"
    stub.models = [*stub.models, hostile_id]
    models = kernel.execute("%mistral models").markdown[-1]
    assert "\\<img" in models and not live_markup(models)
    kernel.execute(f"bait = {hostile_id!r}")
    stub.queue(
        Reply(tool_calls=[ToolCallSpec("describe_variable", {"name": hostile_id})]),
        Reply(tool_calls=[ToolCallSpec("describe_variable", {"name": "bait"})]),
        Reply(text="ok"),
    )
    tools = kernel.execute("%%mistral --tools notebook --no-context\nLook")
    assert len(tools.markdown) == 3 and not any(live_markup(m) for m in tools.markdown)
    dry = kernel.execute("%%mistral --dry-run\nWhat is in bait? ````\n" + hostile_id)
    (report,) = dry.markdown
    assert hostile_id in report and not live_markup(report)


def test_a_long_reply_costs_iopub_bytes_in_proportion_to_its_length(stub, kernel):
    """Each display update carries one block, not the reply so far: a 400 kB reply sends
    about its own size, where re-sending the whole text would send it dozens of times."""
    paragraph = "Revenue grows in the north while the south stays flat. " * 8
    text = "\n\n".join(f"{i}. {paragraph}" for i in range(900))  # ~400 kB
    stub.queue(Reply(text=text, chunks=[text[i : i + 120] for i in range(0, len(text), 120)]))
    stub.token_delay = 0.001  # ~3,400 events over a few seconds: many throttled updates
    run = kernel.execute(
        "%%mistral --no-context --no-insert --max-tokens 120000\nA long answer", timeout=120
    )
    assert run.status == "ok", run.reply
    sizes = [
        len(m["content"]["data"]["text/markdown"])
        for m in run.messages
        if m["msg_type"] in ("display_data", "update_display_data")
    ]
    assert len(sizes) >= 50 and run.updates >= 10
    assert max(sizes) <= HARD_BLOCK_CHARS + 200  # no update carries more than one block
    assert sum(sizes) <= 3 * len(text)  # linear in the reply, not quadratic
    blocks = "".join(run.markdown)
    assert all(f"{i}. Revenue grows" in blocks for i in range(900))


# ------------------------------------------------------------------ reading the line


def test_the_line_magic_never_evaluates_braces_or_dollars(stub, kernel, tmp_path):
    marker = tmp_path / "ran"
    kernel.execute("db_password = 'hunter2-very-secret'\nx = 41")
    stub.queue(Reply(text="ok"), Reply(text="ok"), Reply(text="ok"), Reply(text="ok"))
    kernel.execute("%mistral --no-context is {db_password} strong")
    kernel.execute(f"%mistral --no-context {{__import__('os').system('touch {marker}')}}")
    kernel.execute("%mistral --no-context what is $x and {sales}?")
    kernel.execute("%%mistral --no-context\nwhat is $x and {sales}?")
    asked = [r.body["messages"][-1]["content"] for r in stub.chat_requests]
    assert asked[0] == "is {db_password} strong"  # a secret's name is never expanded
    assert "hunter2" not in json.dumps([r.body for r in stub.chat_requests])
    assert not marker.exists() and asked[1].startswith("{__import__")
    assert asked[2] == asked[3]  # the line magic reads the question as the cell magic does
    assert "$x" in asked[2] and "revenue" in asked[2] and "month" in asked[2]


def test_a_million_character_line_is_asked_promptly(stub, kernel):
    stub.queue(Reply(text="That is long."))
    line = "hello world " * 83_334  # ~1,000,000 characters; IPython's var_expand: hours
    run = kernel.execute(f"%mistral --no-context --no-insert {line}", timeout=90)
    assert run.status == "ok", run.reply
    assert stub.chat_requests[0].body["messages"][-1]["content"] == line.strip()


def test_questions_that_start_with_a_subcommand_name_are_questions(stub, kernel):
    stub.queue(*(Reply(text="ok") for _ in range(4)))
    kernel.execute("%mistral --no-context usage of pd.cut")
    kernel.execute("%mistral --no-context help me plot sales")
    kernel.execute("%mistral ask --no-context help")
    kernel.execute('%mistral --no-context what does "a b" mean, and -t?')
    asked = [r.body["messages"][-1]["content"] for r in stub.chat_requests]
    assert asked == [
        "usage of pd.cut",
        "help me plot sales",
        "help",
        'what does "a b" mean, and -t?',
    ]
    help_text = kernel.execute("%mistral help").markdown[-1]
    assert "%mistral ask question" in help_text and "%mistral usage of pd.cut" in help_text
    assert len(stub.chat_requests) == 4  # `%mistral help` alone is the subcommand


def test_an_unbalanced_quote_is_a_question_or_one_clear_line(stub, kernel):
    stub.queue(Reply(text="ok"))
    asked = kernel.execute('%mistral --no-context "unbalanced')
    assert asked.status == "ok" and "Traceback" not in asked.stderr
    assert stub.chat_requests[0].body["messages"][-1]["content"] == '"unbalanced'
    for line in ('%mistral -m "mistral-large', '%%mistral -m "mistral-large\nHi'):
        run = kernel.execute(line)
        assert run.reply["ename"] == "UsageError" and "unclosed quote" in run.reply["evalue"]
    assert len(stub.chat_requests) == 1


@pytest.mark.parametrize(
    "name, message",
    [
        ("get_ipython", "IPython's own get_ipython"),
        ("In", "IPython's own In"),
        ("_i3", "IPython's own _i3"),
        ("print", "built-in print"),
        ("1bad", "needs a Python variable name"),
        ("class", "needs a Python variable name"),
    ],
)
def test_out_takes_a_plain_variable_name(stub, kernel, name, message):
    run = kernel.execute(f"%%mistral --no-context -o {name}\nHi")
    assert run.reply["ename"] == "UsageError" and message in run.reply["evalue"]
    assert stub.chat_requests == []
    assert kernel.execute("get_ipython().run_line_magic('mistral', 'config')").status == "ok"


def test_doubled_braces_are_sent_as_written(stub, kernel):
    stub.queue(Reply(text="ok"))
    kernel.execute("%%mistral --no-context\nWhy does '{{x}}'.format(x=1) give '{x}'?")
    asked = stub.chat_requests[0].body["messages"][-1]["content"]
    assert asked.startswith("Why does '{{x}}'.format(x=1) give '")
    assert "x: int" in asked or "41" in asked  # the single-brace {x} is a placeholder


def test_a_reply_cut_at_the_size_bound_keeps_its_text_and_says_so(stub, kernel):
    paragraph = "The south stays flat. " * 40
    text = "\n\n".join(paragraph for _ in range(30))  # ~26 kB
    stub.queue(Reply(text=text, chunks=[text[i : i + 500] for i in range(0, len(text), 500)]))
    kernel.execute("%config Mistral.max_reply_chars = 10000")
    try:
        run = kernel.execute("%%mistral --no-context --no-insert --max-tokens 20000\nLong")
    finally:
        kernel.execute("%config Mistral.max_reply_chars = 1000000")
    assert run.status == "ok" and "Traceback" not in run.stderr
    shown = "".join(run.markdown)
    assert "The south stays flat." in shown and "the answer above is incomplete" in shown
    assert "max_reply_chars" in run.stderr and len(run.stderr.strip().splitlines()) == 1
