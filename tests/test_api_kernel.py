"""The api's behaviour as a notebook user meets it, through a real kernel and the stub:
no dialect setting needed for a local server, the retirement message for 2407, rate limits
that say so, settings refused in one line, no key or URL credentials in `%mistral config`,
the environment read when a request is made."""

from __future__ import annotations

import pytest

from tests.kernel import Kernel, stub_env, stub_kernel
from tests.stub import RETIRED_2407, Fault, Reply, StubServer


def model_list_requests(stub: StubServer) -> int:
    return sum(1 for r in stub.requests if r.method == "GET" and r.path == "/v1/models")


@pytest.mark.parametrize(
    "stub_dialect, shown",
    [
        ("mistral", "mistral (from /models: cards carry capabilities (La Plateforme))"),
        ("vllm", "openai (from /models: owned_by vllm)"),
    ],
)
def test_a_local_server_needs_no_dialect_setting(stub_dialect, shown):
    with StubServer(dialect=stub_dialect) as stub:
        stub.queue(Reply(text="Hello from the stub."))
        # MISTRAL_DIALECT empty: nothing forces the dialect, only the server can tell
        kernel = Kernel({**stub_env(stub), "MISTRAL_DIALECT": ""})
        try:
            kernel.execute("%load_ext mistral_magic")
            run = kernel.execute("%%mistral --no-context\nSay hello")
            assert run.markdown[-1].startswith("Hello from the stub."), run.stderr
            assert run.stderr == ""
            config = kernel.execute("%mistral config").markdown[-1]
            assert f"| dialect | `{shown}` |" in config
        finally:
            kernel.shutdown()
        assert model_list_requests(stub) == 1  # asked once: at load, in the background


def test_retired_2407_gets_the_retirement_message():
    with (
        StubServer(retired=RETIRED_2407) as stub,
        stub_kernel(stub, "%load_ext mistral_magic") as k,
    ):
        run = k.execute("%%mistral --no-context\nHello?")
        assert "retired from La Plateforme on 2025-03-30" in run.stderr
        assert "mistral-large-latest" in run.stderr and "%mistral models" in run.stderr
        assert "Traceback" not in run.stderr and len(run.stderr.strip().splitlines()) == 1
        # the model list the user is pointed at no longer offers it
        models = k.execute("%mistral models").markdown[-1]
        assert "mistral-large-2407" not in models and "mistral-large-latest" in models


def test_rate_limits_say_so_while_waiting(stub):
    with stub_kernel(stub, "%load_ext mistral_magic") as k:
        stub.queue(Fault(429, headers={"Retry-After": "1"}), Reply(text="Finally."))
        run = k.execute("%%mistral --no-context\nHello?")
        assert "Mistral: rate limited, retrying in 1 s" in run.stdout
        assert run.markdown[-1].startswith("Finally.")
        assert len(stub.chat_requests) == 2


@pytest.mark.parametrize(
    "line, reason",
    [
        ("%config Mistral.base_url = 'localhost:8000/v1'", "must start with http://"),
        ("%config Mistral.base_url = 'http://127.0.0.1:abc/v1'", "port is not a number"),
        ("%config Mistral.timeout = -1", "above 0"),
        ("%config Mistral.timeout = 0", "above 0"),
    ],
)
def test_a_bad_setting_is_refused_in_one_clear_line(stub, line, reason):
    with stub_kernel(stub, "%load_ext mistral_magic") as k:
        run = k.execute(line)
        shown = run.stdout + run.stderr
        assert reason in shown and "Traceback" not in shown
        assert len(shown.strip().splitlines()) == 1
        # the setting kept its working value: a question still gets its answer
        stub.queue(Reply(text="Still fine."))
        assert k.execute("%%mistral --no-context\nHi").markdown[-1].startswith("Still fine.")


def test_config_shows_neither_the_key_nor_url_credentials(stub):
    stub.api_key = None  # the URL's credentials go as Basic auth; the stub takes anything
    url = stub.base_url.replace("http://", "http://dana:url-pa55word@")
    env = {**stub_env(stub), "MISTRAL_API_KEY": "sk-config-test-9876543210WXYZ"}
    kernel = Kernel({**env, "MISTRAL_BASE_URL": url})
    try:
        kernel.execute("%load_ext mistral_magic")
        config = kernel.execute("%mistral config").markdown[-1]
        assert "| api_key | `set` |" in config
        assert "WXYZ" not in config and "url-pa55word" not in config and "dana" not in config
        assert "[credentials]@127.0.0.1" in config
        stub.queue(Fault(400, body={"message": f"rejected {url}"}))
        run = kernel.execute("%%mistral --no-context\nHi")
        assert "url-pa55word" not in run.stderr and "rejected" in run.stderr
    finally:
        kernel.shutdown()


def test_the_environment_is_read_when_a_request_is_made(stub):
    with (
        StubServer(api_key="second-key") as second,
        stub_kernel(stub, "%load_ext mistral_magic") as k,
    ):
        second.queue(Reply(text="From the second server."))
        k.execute(
            "import os\n"
            f"os.environ['MISTRAL_BASE_URL'] = {second.base_url!r}\n"
            "os.environ['MISTRAL_API_KEY'] = 'second-key'"
        )
        run = k.execute("%%mistral --no-context\nWho are you?")
        assert run.markdown[-1].startswith("From the second server."), run.stderr
        assert stub.chat_requests == [] and len(second.chat_requests) == 1
