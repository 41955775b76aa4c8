"""The magics in terminal IPython (a real ``ipython`` process against the stub): text is
printed once as it streams, and Markdown (help, tables) is printed as plain text."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.kernel import stub_env
from tests.stub import Reply, StubServer

ROOT = Path(__file__).resolve().parents[1]
JSON_REPLY = '{"rows": 6, "note": "the whole reply."}'
ESCAPES = "\x1b]52;c;cHduZWQ=\x07\x1b[2J"


@pytest.fixture(scope="module")
def terminal() -> Iterator[str]:
    """What terminal IPython printed for a few magics, run one after the other."""
    command = [sys.executable, "-m", "IPython", "--quick", "--no-banner", "--colors=nocolor"]
    with StubServer() as stub:
        # the second reply tries to set the terminal's clipboard (OSC 52) and clear the screen
        stub.queue(Reply(text=JSON_REPLY), Reply(text=f"Plain **answer**.{ESCAPES}"))
        code = (
            "%load_ext mistral_magic\n"
            "%mistral --json --no-context -o info describe sales\n"
            "print('stored:', info['rows'])\n"
            "%mistral --no-context a plain question\n"
            "print('=== help')\n"
            "%mistral help\n"
            "print('=== config')\n"
            "%mistral config\n"
            "print('=== usage')\n"
            "%mistral usage\n"
            "print('=== models')\n"
            "%mistral models\n"
            "print('=== tools')\n"
            "%mistral tools\n"
        )
        done = subprocess.run(
            [*command, "-c", code],
            cwd=ROOT,
            env={**os.environ, **stub_env(stub), "TERM": "dumb"},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
        yield done.stdout


def test_json_is_printed_once_without_a_fence(terminal):
    before_help = terminal.split("=== help")[0]
    assert before_help.count(JSON_REPLY) == 1
    assert 'reply."}reply' not in before_help and "```" not in before_help
    assert "stored: 6" in before_help
    assert "Plain **answer**." in before_help  # a reply is printed as the model wrote it


def test_control_characters_from_the_model_never_reach_the_terminal(terminal):
    assert "\x1b" not in terminal and "\x07" not in terminal
    assert "Plain **answer**.\ufffd]52;c;cHduZWQ=\ufffd\ufffd[2J" in terminal


def test_help_and_tables_are_plain_text(terminal):
    help_text = terminal.split("=== help")[1].split("=== config")[0]
    config = terminal.split("=== config")[1].split("=== usage")[0]
    usage = terminal.split("=== usage")[1].split("=== models")[0]
    models = terminal.split("=== models")[1].split("=== tools")[0]
    tools = terminal.split("=== tools")[1]
    for shown in (help_text, config, usage, models, tools):
        assert "**" not in shown and "```" not in shown and "|---" not in shown
    assert "%mistral ask question" in help_text and "-m/--model ID" in help_text
    rows = [line for line in config.splitlines() if line.strip()]
    assert rows[0].split() == ["setting", "value"] and set(rows[1]) == {"-", " "}
    value_column = rows[0].index("value")
    for row in rows[2:]:  # every value starts in the same column (an empty one is left out)
        if len(row) > value_column:
            assert row[value_column - 2 : value_column] == "  " and row[value_column] != " "
    assert any(line.startswith("model ") and "mistral-large-2407" in line for line in rows)
    assert "mistral-large-2407" in usage
    model_rows = [line.split()[:2] for line in models.splitlines()]
    assert ["mistral-large-2407", "131,072"] in model_rows
    assert ["describe_variable", "notebook"] in [line.split()[:2] for line in tools.splitlines()]


def run_in_a_terminal(stub: StubServer, code: str, timeout: float = 120) -> str:
    """What terminal IPython wrote to a real (pseudo-)terminal running ``code``."""
    import pty
    import select
    import time

    command = [sys.executable, "-m", "IPython", "--quick", "--no-banner", "--colors=nocolor"]
    leader, follower = pty.openpty()
    env = {**os.environ, **stub_env(stub), "TERM": "xterm"}
    process = subprocess.Popen(
        [*command, "-c", code], cwd=ROOT, env=env, stdin=follower, stdout=follower, stderr=follower
    )
    os.close(follower)
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([leader], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                break
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # the terminal closed: the process ended
                break
            if not chunk:
                break
            chunks.append(chunk)
        assert process.wait(timeout=max(1.0, deadline - time.monotonic())) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        os.close(leader)
    return b"".join(chunks).decode("utf-8", "replace")


def test_thinking_is_dimmed_in_a_terminal_and_apart_from_the_answer():
    with StubServer() as stub:
        stub.queue(Reply("The answer is 144.", thinking="Twelve twelves\x1b[2J make 144."))
        code = (
            "%load_ext mistral_magic\n"
            "%mistral -m magistral-medium-latest -o out --no-context 12 * 12?\n"
            "print('stored:', repr(out))\n"
        )
        shown = run_in_a_terminal(stub, code)
    import re

    shown = shown.replace("\r\n", "\n")
    dimmed = re.findall(r"\x1b\[2m(.*?)\x1b\[0m", shown, re.DOTALL)
    # all of the thinking, dimmed, and the model's own escape sequence not passed on
    assert "".join(dimmed) == "Twelve twelves\ufffd[2J make 144."
    plain = re.sub(r"\x1b\[2m.*?\x1b\[0m", "", shown, flags=re.DOTALL)
    assert "Twelve" not in plain and "\x1b[2J" not in shown
    after = shown.rsplit("\x1b[0m", 1)[1]
    assert after.startswith("\n\nThe answer is 144.")  # a blank line, then the answer
    assert "stored: 'The answer is 144.'" in shown


def test_confirm_above_asks_on_the_terminal_and_no_sends_nothing():
    """Mistral.confirm_above in terminal IPython: an ``input()`` question; "n" sends
    nothing, "y" sends the request (counted by the stub)."""
    command = [sys.executable, "-m", "IPython", "--quick", "--no-banner", "--colors=nocolor"]
    with StubServer() as stub:
        stub.queue(Reply(text="Sent after a yes."))
        code = (
            "%load_ext mistral_magic\n"
            "%config Mistral.confirm_above = 0.0\n"
            "%mistral --no-context --max-tokens 100 first question\n"
            "print('=== after no')\n"
            "%mistral --no-context --max-tokens 100 second question\n"
        )
        done = subprocess.run(
            [*command, "-c", code],
            cwd=ROOT,
            env={**os.environ, **stub_env(stub), "TERM": "dumb"},
            input="n\ny\n",
            capture_output=True,
            text=True,
            timeout=120,
        )
        bodies = [r.body for r in stub.chat_requests]
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    first, second = done.stdout.split("=== after no")
    assert "Mistral.confirm_above" in first and "Send it? [y/N]" in first
    assert "Not sent." in first + done.stderr
    assert "Sent after a yes." in second
    assert [b["messages"][-1]["content"] for b in bodies] == ["second question"]
