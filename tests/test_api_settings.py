"""Settings checked when set, the environment read when a request is made, the key and URL
credentials never shown, retry notices, one retry policy, and the api's closed surface."""

from __future__ import annotations

import ast
import asyncio
import inspect
import pkgutil
import re
import subprocess
import sys
from pathlib import Path

import pytest
from traitlets import TraitError

import mistral_magic
import mistral_magic.api as api
from mistral_magic.api import AsyncMistralClient, MistralClient, Notice
from mistral_magic.config import Mistral
from tests.stub import Fault, Reply, Response, StubServer

USER = [{"role": "user", "content": "Say hello"}]
PACKAGE = Path(mistral_magic.__file__).parent


# ------------------------------------------------------------------ settings checked when set


@pytest.mark.parametrize(
    "name, value, reason",
    [
        ("base_url", "localhost:8000/v1", "must start with http:// or https://"),
        ("base_url", "http://127.0.0.1:abc/v1", "port is not a number"),
        ("base_url", "http://127.0.0.1:99999/v1", "port is not a number"),
        ("base_url", "https:///v1", "has no host name"),
        ("base_url", "http://host/v1 ", "contains spaces"),
        ("timeout", -1.0, "above 0"),
        ("timeout", 0.0, "above 0"),
        ("timeout", float("nan"), "above 0"),
        ("retry_budget", -5.0, "0 or more"),
        ("max_retries", -1, "0 or more"),
        ("max_reply_chars", 0, "1 or more"),
    ],
)
def test_settings_are_checked_when_set_with_the_reason(name, value, reason):
    settings = Mistral()
    with pytest.raises(TraitError) as info:
        setattr(settings, name, value)
    message = str(info.value)
    assert reason in message and f"Mistral.{name}" in message and "\n" not in message


def test_the_base_url_check_never_quotes_credentials():
    with pytest.raises(TraitError) as info:
        Mistral().base_url = "ftp://bob:hunter2hunter2@host/v1"
    assert "hunter2" not in str(info.value) and "[credentials]" in str(info.value)


def test_environment_settings_follow_the_environment_until_set(monkeypatch):
    monkeypatch.setenv("MISTRAL_MODEL", "first")
    monkeypatch.setenv("MISTRAL_BASE_URL", "http://one:8000/v1")
    settings = Mistral()
    assert (settings.model, settings.base_url) == ("first", "http://one:8000/v1")
    monkeypatch.setenv("MISTRAL_MODEL", "second")
    monkeypatch.setenv("MISTRAL_BASE_URL", "http://two:8000/v1")
    assert (settings.model, settings.base_url) == ("second", "http://two:8000/v1")
    settings.model = "chosen"  # an explicitly set trait wins over the environment
    monkeypatch.setenv("MISTRAL_MODEL", "third")
    assert settings.model == "chosen"
    assert settings.client_options()["model"] == "chosen"
    assert settings.client_options()["base_url"] is None  # the client reads it per request


def test_effective_settings_show_the_key_as_set_or_missing_only(monkeypatch):
    secret = "sk-abcdefghijklmnop1234"
    monkeypatch.setenv("MISTRAL_API_KEY", secret)
    monkeypatch.setenv("MISTRAL_BASE_URL", "http://carol:topsecretpw@gpu:8000/v1")
    values = Mistral().effective()
    assert values["api_key"] == "set"
    assert values["base_url"] == "http://[credentials]@gpu:8000/v1"
    shown = repr(values)
    assert "1234" not in shown and "topsecretpw" not in shown and "carol" not in shown
    monkeypatch.delenv("MISTRAL_API_KEY")
    assert Mistral().effective()["api_key"] == "missing"


def test_config_help_shows_the_base_url_without_credentials(monkeypatch):
    monkeypatch.setenv("MISTRAL_BASE_URL", "http://erin:hidden-pw-77@gpu:8000/v1")
    settings = Mistral()
    help_text = Mistral.class_get_help(settings)  # what `%config Mistral` prints
    assert "hidden-pw-77" not in help_text and "erin" not in help_text
    assert "Current: 'http://[credentials]@gpu:8000/v1'" in help_text
    assert "Choices: any of ['auto', 'mistral', 'openai']" in help_text


def test_one_client_follows_the_environment_from_request_to_request(stub, monkeypatch):
    with StubServer(api_key="other-key") as other:
        monkeypatch.setenv("MISTRAL_BASE_URL", stub.base_url)
        monkeypatch.setenv("MISTRAL_API_KEY", stub.api_key)
        monkeypatch.setenv("MISTRAL_DIALECT", "mistral")
        with MistralClient() as client:
            client.complete(USER)
            monkeypatch.setenv("MISTRAL_BASE_URL", other.base_url)
            monkeypatch.setenv("MISTRAL_API_KEY", "other-key")
            monkeypatch.setenv("MISTRAL_MODEL", "mistral-small-latest")
            client.complete(USER)
        assert len(stub.chat_requests) == 1 and len(other.chat_requests) == 1
        assert other.chat_requests[0].body["model"] == "mistral-small-latest"


def test_a_malformed_base_url_in_the_environment_is_one_clear_error(monkeypatch):
    monkeypatch.setenv("MISTRAL_BASE_URL", "localhost:8000/v1")
    with pytest.raises(api.SettingsError, match="must start with http:// or https://"):
        MistralClient(api_key="x").complete(USER)


# ------------------------------------------------------------------ retry notices


def test_a_rate_limit_wait_is_announced_before_it_starts(stub):
    heard: list[tuple[Notice, int]] = []
    stub.queue(Fault(429, headers={"Retry-After": "0.2"}), Reply(text="ok"))
    with MistralClient(api_key=stub.api_key, base_url=stub.base_url, dialect="mistral") as c:
        stream = c.stream(USER, on_notice=lambda n: heard.append((n, len(stub.chat_requests))))
        assert "".join(d.text for d in stream) == "ok"
    ((notice, sent_before),) = heard
    assert (notice.kind, notice.seconds, notice.attempt) == ("rate_limited", 0.2, 1)
    assert notice.message == "rate limited, retrying in 0.2 s"
    assert sent_before == 1  # heard while waiting, before the second try


def test_the_async_client_awaits_an_async_notice(stub):
    stub.queue(Fault(503), Reply(text="ok"))
    heard: list[str] = []

    async def note(notice: Notice) -> None:
        await asyncio.sleep(0)
        heard.append(notice.message)

    async def run() -> str:
        async with AsyncMistralClient(
            api_key=stub.api_key, base_url=stub.base_url, dialect="mistral", backoff=0.01
        ) as c:
            return "".join([d.text async for d in c.stream(USER, on_notice=note)])

    assert asyncio.run(run()) == "ok"
    assert len(heard) == 1 and heard[0].startswith("the server answered HTTP 503, retrying in")


# ------------------------------------------------------------------ one retry policy for bulk/


def test_bulk_uses_the_clients_policy_garbage_is_not_sent_twice(stub_env, monkeypatch):
    monkeypatch.setenv("MISTRAL_DIALECT", "mistral")
    page = b"<html><title>Proxy error</title></html>"
    stub_env.route("POST", "/v1/chat/completions", lambda *_: Response(200, page))
    result = mistral_magic.map(["one"], "Echo: {}", progress=False, cache=False)
    assert type(result[0]).__name__ == "ApplyError" and "HTML page" in str(result[0])
    assert len(stub_env.chat_requests) == 1


def test_bulk_retries_what_the_policy_calls_transient(stub_env, monkeypatch):
    monkeypatch.setenv("MISTRAL_DIALECT", "mistral")
    stub_env.queue(Fault(503), Reply(text="fine"))
    assert mistral_magic.map(["one"], "Echo: {}", progress=False, cache=False) == ["fine"]
    assert len(stub_env.chat_requests) == 2


# ------------------------------------------------------------------ the api's surface


def test_the_public_surface_resolves_and_holds_every_error_class():
    for name in api.__all__:
        assert getattr(api, name) is not None
    errors = api.MistralError.__module__
    for info in pkgutil.iter_modules(api.__path__):
        module = __import__(f"mistral_magic.api.{info.name}", fromlist=["_"])
        for value in vars(module).values():
            if inspect.isclass(value) and issubclass(value, api.MistralError):
                assert value.__module__ == errors, f"{value.__name__} lives in {module.__name__}"
                assert value.__name__ in api.__all__


def test_importing_the_api_and_its_errors_does_not_import_httpx():
    code = (
        "import sys, mistral_magic.api as a, mistral_magic.api.errors, mistral_magic.config;"
        "a.MistralError; a.SettingsError; print('httpx' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def _docstrings(tree: ast.AST) -> set[int]:
    found = set()
    for node in ast.walk(tree):
        kinds = (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)
        if isinstance(node, kinds) and ast.get_docstring(node, clean=False) is not None:
            found.add(id(node.body[0].value))
    return found


def test_api_messages_name_no_magic_commands():
    for path in (PACKAGE / "api").glob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        docstrings = _docstrings(tree)
        for node in ast.walk(tree):
            if id(node) in docstrings:
                continue
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                text = node.value
                assert "%mistral" not in text and "%config" not in text, (path.name, text)
                assert not re.search(r"--(model|budget|no-context|tools)\b", text), path.name


def test_no_code_outside_the_api_uses_a_clients_private_parts():
    private = re.compile(r"\bclients?\._[a-z]|\._http\b|\._pool\b")
    for path in PACKAGE.rglob("*.py"):
        if "api" in path.relative_to(PACKAGE).parts[:1]:
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            assert not private.search(line), f"{path.relative_to(PACKAGE)}:{number}: {line}"
