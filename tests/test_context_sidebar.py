"""What the sidebar's path (jupyter_server extension, pytest-jupyter) sends to the model from
notebook JSON: redacted before clipped, images named, the notebook's language, labels that say
where things come from, old notebook formats, and estimates calibrated by the server's usage."""

from __future__ import annotations

import base64
import copy
import json
import os
from collections.abc import Iterator
from typing import Any

import pytest

from mistral_magic.server.events import decode_events
from tests.stub import Reply, StubServer

KEY = "mk-7fQ2pLx9Rt4vZ8wY3nB6cD1eH5jK"  # the configured key: only the literal finds it


@pytest.fixture
def stub() -> Iterator[StubServer]:
    server = StubServer(api_key=KEY)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def code(count: int | None, source: str, *outputs: dict[str, Any]) -> dict[str, Any]:
    return {
        "cell_type": "code",
        "execution_count": count,
        "source": source,
        "outputs": list(outputs),
        "metadata": {},
    }


def markdown(source: str) -> dict[str, Any]:
    return {"cell_type": "markdown", "source": source, "metadata": {}}


def error_output(ename: str, evalue: str) -> dict[str, Any]:
    return {
        "output_type": "error",
        "ename": ename,
        "evalue": evalue,
        "traceback": [f"\x1b[0;31m{ename}\x1b[0m: {evalue}"],
    }


async def chat(jp_fetch: Any, stub: StubServer, **body: Any) -> list[tuple[str, dict]]:
    stub.queue(Reply(text="Noted."))
    payload = {"prompt": "What is going on?", **body}
    response = await jp_fetch("mistral-magic", "chat", method="POST", body=json.dumps(payload))
    events = decode_events(response.body)
    assert [name for name, _ in events][-1] == "done", events
    return events


async def context(jp_fetch: Any, **body: Any) -> dict[str, Any]:
    response = await jp_fetch("mistral-magic", "context", method="POST", body=json.dumps(body))
    return json.loads(response.body)


def system_text(stub: StubServer, index: int = -1) -> str:
    return stub.chat_requests[index].body["messages"][0]["content"]


def key_pieces(text: str) -> list[str]:
    return [KEY[i : i + 8] for i in range(len(KEY) - 7) if KEY[i : i + 8] in text]


async def test_explain_keeps_the_missing_column_and_no_key_survives_a_clip(
    lab_stub: StubServer, jp_fetch: Any
) -> None:
    long_message = "x" * 985 + KEY + " was refused"  # the message is clipped at 1,000
    notebook = {
        "cells": [
            code(1, "sales['revenu']", error_output("KeyError", "'revenu'")),
            code(2, "connect()", error_output("ConnectionError", long_message)),
        ]
    }
    await chat(jp_fetch, lab_stub, notebook=notebook, active_cell=0, error_cell=0)
    sent = json.dumps(lab_stub.chat_requests[0].body)
    assert "KeyError in In[1]: 'revenu'" in system_text(lab_stub)
    assert "KeyError: '[REDACTED]'" not in system_text(lab_stub)
    await chat(jp_fetch, lab_stub, notebook=notebook, active_cell=1, error_cell=1)
    sent = json.dumps(lab_stub.chat_requests[1].body)
    assert "ConnectionError in In[2]" in sent
    assert key_pieces(sent) == []


async def test_inline_images_are_named_not_sent(lab_stub: StubServer, jp_fetch: Any) -> None:
    png = base64.b64encode(os.urandom(3000)).decode()
    notebook = {
        "cells": [
            markdown(
                "## Architecture\n"
                f'<img src="data:image/png;base64,{png}" width="600" alt="encoder">\n'
                f"![attention](data:image/jpeg;base64,{png})"
            ),
            code(1, "model = build()"),
        ]
    }
    await chat(jp_fetch, lab_stub, notebook=notebook, active_cell=1)
    system = system_text(lab_stub)
    assert "## Architecture" in system
    assert '<img src="[inline image: image/png, 3.0 kB]" width="600" alt="encoder">' in system
    assert "![attention]([inline image: image/jpeg, 3.0 kB])" in system
    assert png[:32] not in system and "base64," not in system


async def test_the_notebook_language_fences_the_code(lab_stub: StubServer, jp_fetch: Any) -> None:
    notebook = {
        "metadata": {
            "kernelspec": {"name": "ir", "language": "R", "display_name": "R"},
            "language_info": {"name": "R", "version": "4.3.1"},
        },
        "cells": [
            code(1, "library(dplyr)\nsales <- read.csv('sales.csv')"),
            code(
                2,
                "sales %>% summarise(total = sum(revnue))",
                error_output("Error", "object 'revnue' not found"),
            ),
        ],
    }
    await chat(jp_fetch, lab_stub, notebook=notebook, active_cell=1)
    system = system_text(lab_stub)
    assert "```r\nsales %>% summarise" in system and "```r\nlibrary(dplyr)" in system
    assert "```python" not in system.split("Notebook context", 1)[1]


def test_the_language_is_exposed_for_the_prompt_builder() -> None:
    from mistral_magic.context.items import code_language
    from mistral_magic.context.notebook import collect_notebook

    julia = {
        "metadata": {"language_info": {"name": "julia"}},
        "cells": [code(1, "using DataFrames")],
    }
    assert code_language(collect_notebook(julia)) == "julia"
    assert code_language(collect_notebook({"cells": [code(1, "import os")]})) == "python"


async def test_labels_say_which_cell_and_where_it_comes_from(
    lab_stub: StubServer, jp_fetch: Any
) -> None:
    filler = "\n".join(f"value_{i} = {i} * 2  # some long explanation" for i in range(200))
    notebook = {
        "cells": [
            code(5, "import pandas as pd"),
            code(None, filler),  # never run
            code(None, filler),
            code(7, "df = pd.read_csv('a.csv')"),
            code(7, "df = pd.read_csv('b.csv')"),  # a copy keeps the count
            code(9, "df.head()"),
        ]
    }
    answer = await context(jp_fetch, notebook=notebook, active_cell=5, context_budget=900)
    labels = [label for chip in answer["chips"] for label in chip["items"]]
    assert "In[#" not in answer["note"] and "cell #2" in answer["note"], answer["note"]
    assert labels.count("active cell [9]") == 1 and "In[9]" not in labels
    assert "In[7]" not in labels and {"cell #4", "cell #5"} <= set(labels), labels
    await chat(jp_fetch, lab_stub, notebook=notebook, active_cell=5)
    system = system_text(lab_stub)
    assert "live Jupyter kernel" not in system
    assert "Notebook context (from the notebook document open in the editor" in system


async def test_an_error_in_the_active_cell_is_shown_once(
    lab_stub: StubServer, jp_fetch: Any
) -> None:
    notebook = {"cells": [code(3, "total = revenue / count", error_output("NameError", "x"))]}
    await chat(jp_fetch, lab_stub, notebook=notebook, active_cell=0, error_cell=0)
    system = system_text(lab_stub)
    assert system.count("total = revenue / count") == 1
    assert "(The failing cell is the one shown as active cell [3].)" in system


NBFORMAT_3 = {
    "nbformat": 3,
    "nbformat_minor": 0,
    "metadata": {"name": "analysis"},
    "worksheets": [
        {
            "metadata": {},
            "cells": [
                {
                    "cell_type": "code",
                    "language": "python",
                    "input": "import pandas as pd\nsales = pd.read_csv('sales.csv')",
                    "prompt_number": 1,
                    "collapsed": False,
                    "metadata": {},
                    "outputs": [],
                },
                {
                    "cell_type": "code",
                    "language": "python",
                    "input": "sales.revenu.sum()",
                    "prompt_number": 2,
                    "collapsed": False,
                    "metadata": {},
                    "outputs": [
                        {
                            "output_type": "pyerr",
                            "ename": "AttributeError",
                            "evalue": "'DataFrame' object has no attribute 'revenu'",
                            "traceback": ["AttributeError: 'DataFrame' object has no attribute"],
                        }
                    ],
                },
            ],
        }
    ],
}


async def test_old_notebook_formats_are_converted_or_said_unreadable(
    lab_stub: StubServer, jp_fetch: Any
) -> None:
    answer = await context(jp_fetch, notebook=copy.deepcopy(NBFORMAT_3), active_cell=1)
    assert {chip["label"] for chip in answer["chips"]} >= {"active cell [2]", "error in [2]"}
    await chat(jp_fetch, lab_stub, notebook=copy.deepcopy(NBFORMAT_3), active_cell=1)
    assert "sales.revenu.sum()" in system_text(lab_stub)
    unreadable = await context(jp_fetch, notebook={"nbformat": 2, "worksheets": "?"})
    assert [chip["label"] for chip in unreadable["chips"]] == ["notebook unreadable"]


async def test_estimates_follow_the_servers_usage(lab_stub: StubServer, jp_fetch: Any) -> None:
    from tests.stub.tokens import count_prompt_tokens

    reported: list[int] = []

    def heavier_tokenizer(body: dict[str, Any]) -> Reply:
        prompt = round(count_prompt_tokens(body) * 1.3)
        reported.append(prompt)
        usage = {"prompt_tokens": prompt, "completion_tokens": 2, "total_tokens": prompt + 2}
        return Reply(text="Fine.", usage=usage)

    lab_stub.responder = heavier_tokenizer
    body = {"prompt": "How many rows?", "model": "mistral-small-latest", "remember": False}
    before = (await context(jp_fetch, **body))["prompt_tokens"]
    response = await jp_fetch("mistral-magic", "chat", method="POST", body=json.dumps(body))
    assert "usage" in [name for name, _ in decode_events(response.body)]
    after = (await context(jp_fetch, **body))["prompt_tokens"]
    assert abs(after - reported[0]) <= 1 and abs(before - reported[0]) > 1
