"""Today's models through a real kernel and the stub, in both dialects: the window bounds the
context, thinking stays apart from the answer, a figure reaches a model that can see it (and
only such a model), tools are refused before sending to a model that cannot call them,
reasoning effort goes to reasoning models only, and %mistral models says what each can do.

On vLLM the cards give only the window: the kernels of that dialect declare what the server
serves (``Mistral.model_capabilities``), as a self-hoster would."""

from __future__ import annotations

import base64
import io
import json

import pytest
from PIL import Image

from tests.kernel import stub_kernel
from tests.stub import Reply, StubServer, ToolCallSpec
from tests.stub.tokens import count_prompt_tokens

SMALL_WINDOW = 6000  # open-mistral-nemo's on these stubs: a vLLM with --max-model-len 6000
VLLM_DECLARATIONS = {
    "pixtral-12b-2409": {"vision": True},
    "magistral-medium-latest": {"reasoning": True},
    "mistral-small-latest": {"reasoning": True, "vision": True},
    "open-mistral-7b": {"function_calling": False},
}
# An empty histogram, titled: what "Why is my histogram empty?" is about.
PLOT = (
    "import matplotlib.pyplot as plt\n"
    "plt.figure(figsize=(4, 3))\n"
    "plt.hist([], bins=10)\n"
    "plt.title('Ages of customers')\n"
)


@pytest.fixture(scope="module", params=["mistral", "vllm"])
def dialect(request) -> str:
    return request.param


@pytest.fixture(scope="module")
def stub(dialect):
    with StubServer(dialect=dialect) as server:
        server.context_windows = {"open-mistral-nemo": SMALL_WINDOW}
        yield server


@pytest.fixture(scope="module")
def kernel(stub, dialect):
    setup = "%load_ext mistral_magic\n%config Mistral.max_retries = 0\n%matplotlib inline\n"
    if dialect == "vllm":
        setup += f"%config Mistral.model_capabilities = {VLLM_DECLARATIONS!r}\n"
    with stub_kernel(stub, setup, MISTRAL_DIALECT="auto") as k:
        yield k


@pytest.fixture(autouse=True)
def fresh(stub, kernel):
    windows = stub.context_windows
    stub.reset()
    stub.context_windows = windows
    kernel.execute("%mistral reset\n%config Mistral.reasoning_effort = None")
    yield


def last_body(stub) -> dict:
    return stub.chat_requests[-1].body


def test_the_context_budget_never_exceeds_the_window_less_max_tokens(stub, kernel):
    # 20 cells of 2,000 characters of output: far more than the window holds
    for i in range(20):
        kernel.execute(f"print(('row {i} ' + 'lorem ipsum dolor ' * 120)[:2000])")
    stub.queue(Reply("Short."))
    run = kernel.execute("%%mistral -m open-mistral-nemo --max-tokens 2048\nSummarise the rows")
    assert run.status == "ok" and "Short." in run.markdown[-1], run.stderr
    body = last_body(stub)
    # the server counted it, and it fits: the stub refuses a prompt over the window
    assert count_prompt_tokens(body) + 2048 <= SMALL_WINDOW
    assert "row 19" in body["messages"][0]["content"]  # context was packed, the newest first
    # a model with a large window gets the whole budget (Mistral.context_budget: 8,000)
    stub.queue(Reply("Long."))
    kernel.execute("%%mistral --max-tokens 2048\nSummarise the rows")
    assert count_prompt_tokens(last_body(stub)) > SMALL_WINDOW


def test_thinking_stays_out_of_the_answer_code_and_out(stub, kernel):
    answer = "Use this:\n```python\ntotal = 144\n```\n"
    thinking = "Maybe:\n```python\nimport os\nos.remove('x')\n```\nNo, 12 * 12 is simpler."
    stub.queue(Reply(answer, thinking=thinking))
    run = kernel.execute("%%mistral -m magistral-medium-latest -o out --no-context\n12 * 12?")
    assert run.status == "ok", run.stderr
    assert kernel.execute("print(repr(out))").stdout.strip() == repr(answer)
    assert run.next_input == "total = 144"  # the answer's code, never the thinking's
    shown = [m for m in run.markdown if m.strip()]
    reasoning = shown[-1]  # collapsed, under the answer (after its footer)
    assert reasoning.startswith("<details><summary>💭 Reasoning · ")
    assert "<details open" not in reasoning and "os.remove" in reasoning
    assert not any("os.remove" in m for m in shown[:-1])
    assert "total = 144" in "".join(shown[:-1])
    # --json parses the answer only
    stub.queue(Reply('{"a": 1}', thinking='First idea: {"b": 2}'))
    parsed = kernel.execute(
        "%%mistral -m magistral-medium-latest --json -o j --no-context\nJSON please"
    )
    assert parsed.status == "ok"
    assert kernel.execute("print(j)").stdout.strip() == "{'a': 1}"
    # the conversation sent back holds the answers, never the thinking
    stub.queue(Reply("ok"))
    kernel.execute("%%mistral -m magistral-medium-latest --no-context\nAnd 13 * 13?")
    sent = json.dumps(last_body(stub)["messages"])
    assert "12 * 12 is simpler" not in sent and "os.remove" not in sent
    assert "total = 144" in sent


def test_a_figure_reaches_a_vision_model_as_a_png_and_only_such_a_model(stub, kernel):
    plotted = kernel.execute(PLOT)
    assert any(
        m["msg_type"] == "display_data" and "image/png" in m["content"]["data"]
        for m in plotted.messages
    )
    stub.queue(Reply("The data list is empty."))
    run = kernel.execute("%%mistral -m pixtral-12b-2409\nWhy is my histogram empty?")
    assert run.status == "ok", run.stderr
    content = last_body(stub)["messages"][-1]["content"]
    assert content[0] == {"type": "text", "text": "Why is my histogram empty?"}
    (image,) = [c for c in content if c["type"] == "image_url"]
    url = image["image_url"]["url"]
    assert url.startswith("data:image/png;base64,")
    with Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))) as png:
        assert png.format == "PNG" and max(png.size) <= 1024
    # the context text never carries base64
    assert "base64" not in last_body(stub)["messages"][0]["content"]
    # a model without vision gets the figure in words, and the user is told
    stub.queue(Reply("Probably no data."))
    run = kernel.execute("%%mistral\nWhy is my histogram empty?")
    assert run.status == "ok", run.stderr
    messages = last_body(stub)["messages"]
    assert isinstance(messages[-1]["content"], str)
    assert "base64" not in json.dumps(messages)
    system = messages[0]["content"]
    assert "(figure)" in system and "titled 'Ages of customers'" in system
    assert "a model with vision would see the figure itself" in run.stdout


def test_tools_are_refused_before_sending_to_a_model_that_cannot_call_them(stub, kernel):
    run = kernel.execute("%%mistral -m open-mistral-7b --tools notebook\nWhat is in df?")
    assert run.status == "error"
    assert "open-mistral-7b cannot call tools" in run.reply["evalue"]
    assert stub.chat_requests == []
    stub.queue(Reply(tool_calls=[ToolCallSpec("list_variables", {})]), Reply("Nothing."))
    ok = kernel.execute("%%mistral --tools notebook --no-context\nWhat is defined?")
    assert ok.status == "ok" and len(stub.chat_requests) == 2
    # tools for every question (Mistral.tools) are left out for it, with a note
    stub.queue(Reply("Hello."))
    kernel.execute("%config Mistral.tools = 'notebook'")
    try:
        quiet = kernel.execute("%%mistral -m open-mistral-7b --no-context\nHi")
    finally:
        kernel.execute("%config Mistral.tools = ''")
    assert quiet.status == "ok" and "tools" not in last_body(stub)
    assert "tools not offered: open-mistral-7b cannot call tools" in quiet.stdout


def test_reasoning_effort_goes_to_reasoning_models_only(stub, kernel):
    stub.queue(Reply("144", thinking="12 * 12"))
    kernel.execute("%%mistral -m mistral-small-latest --reasoning-effort high --no-context\nQ")
    assert last_body(stub)["reasoning_effort"] == "high"
    stub.queue(Reply("144"))
    run = kernel.execute("%%mistral --reasoning-effort high --no-context\nQ")
    assert run.status == "ok" and "reasoning_effort" not in last_body(stub)
    assert "reasoning effort not sent: mistral-large-2407 is not a reasoning model" in run.stdout
    kernel.execute("%config Mistral.reasoning_effort = 'low'")
    stub.queue(Reply("144", thinking="12 * 12"), Reply("144"))
    kernel.execute("%%mistral -m magistral-medium-latest --no-context\nQ")
    assert last_body(stub)["reasoning_effort"] == "low"
    quiet = kernel.execute("%%mistral --no-context\nQ")
    assert "reasoning_effort" not in last_body(stub) and "reasoning" not in quiet.stdout
    bad = kernel.execute("%%mistral --reasoning-effort extreme --no-context\nQ")
    assert bad.status == "error" and "must be one of none, minimal" in bad.reply["evalue"]


def test_a_deprecated_model_gets_a_notice_once(stub, kernel, dialect):
    stub.queue(Reply("one"), Reply("two"))
    first = kernel.execute("%%mistral -m open-mistral-7b --no-context\nHi")
    second = kernel.execute("%%mistral -m open-mistral-7b --no-context\nHi again")
    notice = (
        "ℹ️ Mistral: open-mistral-7b was deprecated on 2024-11-30; the server names "
        "ministral-8b-latest as its replacement."
    )
    if dialect == "vllm":  # vLLM's cards carry no deprecation
        assert "deprecated" not in first.stdout
    else:
        assert first.stdout.strip().splitlines() == [notice]
    assert "deprecated" not in second.stdout


def test_models_table_says_what_each_model_can_do(stub, kernel, dialect):
    table = kernel.execute("%mistral models").markdown[-1]
    rows = {
        line.split("|")[1].strip(): [cell.strip() for cell in line.split("|")[2:-1]]
        for line in table.splitlines()
        if line.startswith("| ") and not line.startswith("| model")
    }
    header = table.splitlines()[0]
    assert header.startswith("| model | aliases | window | tools | vision | FIM | reasoning")
    if dialect == "mistral":
        assert rows["pixtral-12b-2409"][:5] == [
            "pixtral-12b, pixtral-12b-latest",
            "131,072",
            "yes",
            "yes",
            "no",
        ]
        assert (
            rows["codestral-2508"][0]
            == "codestral-latest, mistral-code-fim-latest, mistral-code-latest"
        )
        assert rows["codestral-2508"][4] == "yes"  # FIM
        assert rows["mistral-large-2407"][6] == "2024-11-30 → mistral-large-latest"
        assert rows["mistral-large-2407"][7] == "**current**"
        assert rows["open-mistral-7b"][2] == "no"  # no tools
        assert rows["mistral-small-2603"][5] == "yes"  # reasoning
    else:
        assert rows["pixtral-12b-2409"][:5] == ["", "131,072", "?", "yes", "?"]  # declared
        assert rows["mistral-large-2407"][:6] == ["", "131,072", "?", "?", "?", "?"]
        assert rows["open-mistral-nemo"][1] == f"{SMALL_WINDOW:,}"
    assert ("does not say" in table) is (dialect == "vllm")  # the legend of "?"


def test_a_dry_run_shows_the_figure_without_its_data(stub, kernel):
    kernel.execute(PLOT)
    run = kernel.execute(
        "%%mistral -m pixtral-12b-2409 --dry-run -o req\nWhat does the chart above show?"
    )
    (report,) = run.markdown
    assert "Figures sent as images: Out\\[" in report and "tokens)" in report
    assert "characters of base64" in report and "iVBOR" not in report
    assert stub.chat_requests == []
    # -o keeps the exact body, image data included
    url = kernel.execute("print(req['messages'][-1]['content'][1]['image_url']['url'][:30])").stdout
    assert url.startswith("data:image/png;base64,iVBOR")
