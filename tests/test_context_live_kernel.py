"""What reaches the model from a real ipykernel (the stub records every request): secrets
are redacted before anything is clipped, IPython's own names stay out of reach, slow values
cannot hold a question, and bad text gets one clear behaviour."""

from __future__ import annotations

import json

import pytest

from tests.kernel import Kernel, stub_kernel
from tests.stub import Reply, StubServer, ToolCallSpec

#: The configured key: 31 characters, no known format (only the literal key finds it).
KEY = "mk-7fQ2pLx9Rt4vZ8wY3nB6cD1eH5jK"


@pytest.fixture(scope="module")
def stub():
    with StubServer(api_key=KEY) as server:
        yield server


@pytest.fixture(scope="module")
def kernel(stub):
    with stub_kernel(
        stub, "%load_ext mistral_magic\n%config Mistral.max_retries = 0\nimport os, time"
    ) as k:
        yield k


@pytest.fixture(autouse=True)
def fresh(stub, kernel):
    stub.reset()
    kernel.execute("%mistral reset")
    yield


def sent(stub: StubServer, index: int = 0) -> str:
    """Everything a chat request carried, as JSON text."""
    return json.dumps(stub.chat_requests[index].body, ensure_ascii=False)


def key_pieces(text: str, secret: str = KEY) -> list[str]:
    """8-character pieces of ``secret`` found in ``text`` (a clipped key is still a leak)."""
    return [secret[i : i + 8] for i in range(len(secret) - 7) if secret[i : i + 8] in text]


def ask(kernel: Kernel, stub: StubServer, question: str, flags: str = "") -> str:
    stub.queue(Reply(text="Noted."))
    run = kernel.execute(f"%%mistral {flags}\n{question}")
    assert run.status == "ok", run.reply
    assert "Traceback" not in run.stderr, run.stderr
    return sent(stub)


def test_a_key_inside_a_dataframe_cell_is_not_sent_even_in_part(stub, kernel):
    # Clipped to the table's cell width before redaction, 23 of the key's 31 characters went out.
    setup = kernel.execute(
        "import pandas as pd\n"
        "accounts = pd.DataFrame({'service': ['reports', 'billing'],\n"
        "    'credential': [os.environ['MISTRAL_API_KEY'] + ' (prod)', 'none']})"
    )
    assert setup.status == "ok"
    body = ask(kernel, stub, "Which services are configured in accounts?")
    assert "accounts: pandas DataFrame" in body
    assert key_pieces(body) == []


def test_private_keys_in_reprs_are_redacted(stub, kernel):
    kernel.execute(
        "settings = {'tls': '-----BEGIN RSA PRIVATE KEY-----\\nMIIEpAIBAAKCAQEA75zq1\\n"
        "b2xhbGEgc2VjcmV0IGtleQ\\n-----END RSA PRIVATE KEY-----\\n', 'port': 8443}"
    )
    body = ask(kernel, stub, "Is {settings} complete?")
    assert "MIIEpAIBAAKCAQEA75zq1" not in body and "b2xhbGEgc2VjcmV0" not in body
    assert "8443" in body


def test_traceback_keeps_the_missing_column_and_hides_the_named_key(stub, kernel):
    failing = kernel.execute(
        "import pandas as pd\n"
        "sales = pd.DataFrame({'region': ['north'], 'revenue': [1.5]})\n"
        "sales['revenu']"
    )
    assert failing.status == "error"
    stub.queue(Reply(text="The column is called revenue."))
    assert kernel.execute("%mistral explain").status == "ok"
    explained = sent(stub)
    assert "KeyError: 'revenu'" in explained
    assert "'[REDACTED]'" not in explained
    assert "KeyError" in ask(kernel, stub, "What failed?")  # the recent cells keep it too

    secret = "rk-9Zx81kQpL0vNw3RtY6"
    stub.reset()
    # built from short pieces: only the message shows it whole (no literal knows it)
    pieces = ", ".join(repr(secret[i : i + 4]) for i in range(0, len(secret), 4))
    failing = kernel.execute(
        "def upload(report, api_key):\n"
        "    raise PermissionError(f'api_key: {api_key!r} was rejected')\n"
        f"upload('q3', api_key=''.join([{pieces}]))"
    )
    assert failing.status == "error"
    stub.queue(Reply(text="The key was rejected."))
    assert kernel.execute("%mistral explain").status == "ok"
    explained = sent(stub)
    assert "was rejected" in explained and "PermissionError" in explained
    assert key_pieces(explained, secret) == [], explained


def test_tools_do_not_reach_ipython_history_lists(stub, kernel):
    kernel.execute("creds = {'password': 'hunter2-xyzzy-42'}\nvalue = 42")
    stub.queue(
        Reply(
            tool_calls=[
                ToolCallSpec("describe_variable", {"name": "In"}),
                ToolCallSpec("describe_variable", {"name": "_ih"}),
                ToolCallSpec("describe_variable", {"name": "value"}),
            ]
        ),
        Reply(text="Done."),
    )
    run = kernel.execute("%%mistral --tools notebook\nWhat ran so far?")
    assert run.status == "ok", run.reply
    results = [m["content"] for m in stub.chat_requests[1].body["messages"] if m["role"] == "tool"]
    assert results[0].startswith("No variable named 'In'")
    assert results[1].startswith("No variable named '_ih'")
    assert results[2] == "value: int = 42"
    assert "hunter2-xyzzy-42" not in sent(stub, 1)


def test_placeholders_name_user_variables_only(stub, kernel):
    kernel.execute("value = 42")
    body = ask(kernel, stub, "Compare {value} with {In} and {_i1} and {get_ipython}", "--new")
    question = stub.chat_requests[0].body["messages"][-1]["content"]
    assert "value: int = 42" in question
    assert "{In}" in question and "{_i1}" in question and "{get_ipython}" in question
    assert "load_ext" not in body.split("Notebook context")[0]


def test_a_slow_repr_in_a_placeholder_is_cut_off_by_the_context_guard(stub, kernel):
    kernel.execute(
        "class Sleepy:\n"
        "    def __repr__(self):\n"
        "        time.sleep(20)\n"
        "        return 'woke up'\n"
        "sleepy = Sleepy()"
    )
    ask(kernel, stub, "What is {sleepy}?", "--no-context")
    question = stub.chat_requests[0].body["messages"][-1]["content"]
    assert "could not describe: took longer than" in question
    assert "woke up" not in question


def test_lone_surrogates_in_the_prompt_and_in_a_placeholder_are_escaped(stub, kernel):
    kernel.execute("name = 'caf\\udce9.csv'")
    stub.queue(Reply(text="A file name."))
    magic = "get_ipython().run_cell_magic('mistral', '--no-context', '{name} in r\\udcfcckblick?')"
    run = kernel.execute(magic)
    assert run.status == "ok", run.reply
    assert "Traceback" not in run.stderr, run.stderr
    question = stub.chat_requests[0].body["messages"][-1]["content"]
    assert "r\\udcfcckblick" in question and "'caf\\udce9.csv'" in question


def test_estimates_are_marked_and_converge_on_the_servers_count(stub, kernel):
    """mistral-large-latest has no bundled tokenizer: its counts are estimates ("≈"), and
    the prompt_tokens of each reply calibrate them (here the server counts 30 % more)."""
    from tests.stub.tokens import count_prompt_tokens

    reported: list[int] = []

    def heavier_tokenizer(body: dict) -> Reply:
        prompt = round(count_prompt_tokens(body) * 1.3)
        reported.append(prompt)
        return Reply(
            text="Fine.",
            usage={"prompt_tokens": prompt, "completion_tokens": 2, "total_tokens": prompt + 2},
        )

    stub.responder = heavier_tokenizer
    question = "%%mistral --new --no-context -m mistral-large-latest {flags}\nHow big is it?"
    before = kernel.execute(question.format(flags="--dry-run")).markdown[0]
    assert "prompt tokens** (estimated)" in before
    assert "**≈" in before
    assert kernel.execute(question.format(flags="")).status == "ok"
    after = kernel.execute(question.format(flags="--dry-run")).markdown[0]
    estimate = int(after.split("**≈", 1)[1].split(" ", 1)[0].replace(",", ""))
    assert abs(estimate - reported[0]) <= 1
    exact = kernel.execute("%%mistral --new --no-context --dry-run\nHow big is it?").markdown[0]
    assert "prompt tokens** (exact)" in exact and "**≈" not in exact  # mistral-large-2407


def test_tools_redact_table_cells_before_clipping_them(stub, kernel):
    setup = kernel.execute(
        "import pandas as pd\n"
        "import polars as pl\n"
        "columns = {'service': ['reports'] * 3,\n"
        "    'note': ['uses ' + os.environ['MISTRAL_API_KEY'] + ' in production ' * 4] * 3}\n"
        "keys, pkeys = pd.DataFrame(columns), pl.DataFrame(columns)"
    )
    assert setup.status == "ok", setup.reply
    stub.queue(
        Reply(
            tool_calls=[
                ToolCallSpec("dataframe_head", {"name": "keys", "n": 3}),
                ToolCallSpec("dataframe_head", {"name": "pkeys", "n": 3}),
                ToolCallSpec("column_stats", {"name": "keys", "column": "note"}),
                ToolCallSpec("describe_variable", {"name": "keys"}),
                ToolCallSpec("search_cells", {"text": "production"}),
            ]
        ),
        Reply(text="Done."),
    )
    run = kernel.execute("%%mistral --tools notebook\nWhat do the notes say?")
    assert run.status == "ok", run.reply
    results = [m["content"] for m in stub.chat_requests[1].body["messages"] if m["role"] == "tool"]
    assert all("[REDACTED]" in result for result in results[:4]), results
    assert key_pieces(sent(stub, 1)) == []
