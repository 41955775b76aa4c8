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
