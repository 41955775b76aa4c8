"""The tool-call loop through Assistant.answer, against the stub over real sockets.

The stub validates every request like La Plateforme (message order, one tool message per
call, 9-character ids, content xor tool_calls) and answers 400 otherwise, so each test that
gets to its final text has also proven the history it sent was valid.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import sys
import time
from typing import Literal

import pytest
from IPython import get_ipython
from IPython.testing.globalipapp import start_ipython
from pydantic import BaseModel

from mistral_magic.config import Mistral
from mistral_magic.session import Session
from mistral_magic.tools.core import registry, tool
from tests.stub import Reply, ToolCallSpec

SECRET = "sk-proj-THISMUSTNEVERLEAVE1234567890"


@pytest.fixture(scope="module")
def shell():
    """The in-process IPython shell with a dataframe, a secret, some cells and an error."""
    ip = start_ipython() or get_ipython()  # one global test shell per process
    before = set(ip.user_ns)
    ip.run_cell(
        "import pandas as pd\n"
        "sales = pd.DataFrame({'region': ['north', 'south', 'north', 'east'],"
        " 'revenue': [10.5, 20.0, 30.25, None]})\n"
        f"api_token = {SECRET!r}\n"
        f"notes = 'the key is {SECRET}'\n",
        store_history=True,
    )
    ip.run_cell("total = sales['revenue'].sum()\nprint('total is', total)", store_history=True)
    ip.run_cell("sales['profit']", store_history=True)  # KeyError: the last error
    ip.mistral_test_error = sys.last_value  # pytest clears sys.last_value before each test
    yield ip
    for name in set(ip.user_ns) - before:
        ip.user_ns.pop(name, None)


@pytest.fixture
def assistant(stub_env, shell, monkeypatch):
    monkeypatch.setenv("MISTRAL_DIALECT", "mistral")
    monkeypatch.setattr(sys, "last_value", shell.mistral_test_error, raising=False)
    settings = Mistral(max_retries=0)
    made = Session(settings, shell)
    yield made
    made.close()


@pytest.fixture(autouse=True)
def clean_registry():
    yield
    for name in registry.names():
        registry.remove(name)


def ask(assistant: Session, prompt: str = "How are sales?", **kwargs):
    events = []
    texts = []
    confirm = kwargs.pop("confirm", None)
    prepared = assistant.prepare(prompt, **kwargs)
    completion = assistant.answer(
        prepared, on_text=texts.append, on_tool=events.append, confirm=confirm
    )
    assistant.record(prepared, completion, remember=kwargs.get("remember", True))
    finished = [e for e in events if e.done]
    return prepared, completion, finished, texts


def tool_messages(request) -> list[dict]:
    return [m for m in request.body["messages"] if m["role"] == "tool"]


# ------------------------------------------------------------------------ built-in tools

BUILTIN_CASES = [
    ("list_variables", {}, ["sales · DataFrame 4×2", "total · float"], ["api_token"]),
    ("describe_variable", {"name": "sales"}, ["region", "revenue", "4 rows"], []),
    ("describe_variable", {"name": "api_token"}, ["looks like a secret"], [SECRET]),
    ("describe_variable", {"name": "notes"}, ["[REDACTED]"], [SECRET]),
    ("describe_variable", {"name": "sails"}, ["No variable named 'sails'", "sales"], []),
    ("dataframe_head", {"name": "sales", "n": 2}, ["first 2 rows", "north", "south"], ["east"]),
    ("dataframe_head", {"name": "total"}, ["not a DataFrame"], []),
    ("column_stats", {"name": "sales", "column": "revenue"}, ["1 missing", "mean"], []),
    ("column_stats", {"name": "sales", "column": "region"}, ["north: 2", "3 distinct"], []),
    ("column_stats", {"name": "sales", "column": "revenu"}, ["Did you mean: revenue"], []),
    ("get_cell", {"n": -2}, ["total = sales", "total is 60.75"], []),
    ("search_cells", {"text": "PROFIT"}, ["sales['profit']"], []),
    ("get_last_error", {}, ["KeyError", "profit"], []),
]


@pytest.mark.parametrize(("name", "arguments", "present", "absent"), BUILTIN_CASES)
def test_each_builtin_tool_round_trip(stub_env, assistant, name, arguments, present, absent):
    stub_env.queue(Reply(tool_calls=[ToolCallSpec(name, arguments)]), Reply(text="Done."))
    _prepared, completion, events, _ = ask(assistant, tools="notebook")
    assert completion.content == "Done."
    first, second = stub_env.chat_requests
    assert [t["function"]["name"] for t in first.body["tools"]] == [
        "list_variables", "describe_variable", "dataframe_head", "column_stats", "get_cell",
        "search_cells", "get_last_error",
    ]  # fmt: skip
    (result,) = tool_messages(second)
    assert result["name"] == name
    for text in present:
        assert text in result["content"]
    for text in absent:
        assert text not in result["content"]
    assert SECRET not in json.dumps(second.body)
    (event,) = events
    assert event.status == "ok" and event.result == result["content"]


def test_with_tools_the_upfront_context_is_smaller_and_the_prompt_says_so(stub_env, assistant):
    assistant.settings.tools_context_budget = 50
    prepared = assistant.prepare("How are sales?", tools="notebook")
    assert "call a tool instead of guessing" in prepared.messages[0]["content"]
    assert prepared.packed is not None and prepared.packed.omitted
    without = assistant.prepare("How are sales?")
    assert "call a tool" not in without.messages[0]["content"]
    assert "tools" not in without.params


# ---------------------------------------------------------------------------- user tools


class Tier(enum.Enum):
    GOLD = "gold"
    SILVER = "silver"


@dataclasses.dataclass
class Window:
    start: str
    days: int = 30


class Address(BaseModel):
    city: str
    zip: str | None = None


def test_user_tool_with_every_supported_type(stub_env, assistant):
    received = {}

    @tool
    def find_customers(
        min_orders: int,
        min_share: float,
        name_like: str,
        active: bool,
        sort: Literal["name", "revenue"],
        tier: Tier,
        ids: list[int],
        weights: dict[str, float],
        window: Window,
        address: Address,
        note: str | None = None,
        limit: int = 5,
    ) -> list[dict]:
        """Find customers.

        Args:
            min_orders: at least this many orders.
            tier: loyalty tier.
        """
        received.update(locals())
        return [{"id": 7, "tier": tier.value, "window_days": window.days}]

    arguments = {
        "min_orders": 3,
        "min_share": 0.25,
        "name_like": "Ac",
        "active": True,
        "sort": "revenue",
        "tier": "gold",
        "ids": [1, 2],
        "weights": {"a": 0.5},
        "window": {"start": "2024-01-01"},
        "address": {"city": "Paris"},
    }
    stub_env.queue(Reply(tool_calls=[ToolCallSpec("find_customers", arguments)]), Reply("ok"))
    ask(assistant, tools="find_customers")
    first, second = stub_env.chat_requests
    (spec,) = first.body["tools"]
    schema = spec["function"]["parameters"]
    assert spec["function"]["description"] == "Find customers."
    assert schema["properties"]["tier"] == {
        "enum": ["gold", "silver"],
        "type": "string",
        "description": "loyalty tier.",
    }
    assert "$ref" not in json.dumps(schema)
    assert received["tier"] is Tier.GOLD
    assert received["window"] == Window("2024-01-01", 30)
    assert received["address"] == Address(city="Paris")
    assert received["limit"] == 5 and received["note"] is None
    (result,) = tool_messages(second)
    assert json.loads(result["content"]) == [{"id": 7, "tier": "gold", "window_days": 30}]


def test_a_tool_that_raises_gives_the_model_the_error_and_the_user_sees_it(stub_env, assistant):
    @tool
    def lookup_customer(customer_id: int) -> dict:
        """Return the CRM record for a customer."""
        raise LookupError(f"customer {customer_id} not found (token {SECRET})")

    stub_env.queue(
        Reply(tool_calls=[ToolCallSpec("lookup_customer", {"customer_id": 7})]),
        Reply(text="That customer does not exist."),
    )
    _prepared, completion, events, _ = ask(assistant, tools="lookup_customer")
    (result,) = tool_messages(stub_env.chat_requests[1])
    assert result["content"].startswith("Error: LookupError: customer 7 not found")
    assert SECRET not in result["content"]
    assert events[0].status == "error" and events[0].result == result["content"]
    assert completion.content == "That customer does not exist."


def test_bad_arguments_unknown_tools_and_broken_json_go_back_as_errors(stub_env, assistant):
    calls = []

    @tool
    def lookup_customer(customer_id: int) -> str:
        calls.append(customer_id)
        return "found"

    stub_env.queue(
        Reply(
            tool_calls=[
                ToolCallSpec("lookup_customer", {"customer_id": "seven"}),
                ToolCallSpec("delete_everything", {}),
                ToolCallSpec("lookup_customer", '{"customer_id": 7'),
            ]
        ),
        Reply(text="Sorry."),
    )
    ask(assistant, tools="lookup_customer")
    results = [m["content"] for m in tool_messages(stub_env.chat_requests[1])]
    assert results[0].startswith("Error: invalid arguments for lookup_customer: customer_id")
    assert results[1].startswith("Error: there is no tool named 'delete_everything'")
    assert results[2].startswith("Error: the arguments are not a JSON object")
    assert calls == []
    history = stub_env.chat_requests[1].body["messages"]
    assert history[-4]["tool_calls"][2]["function"]["arguments"] == "{}"


# -------------------------------------------------------------------------- confirmation


def test_confirm_tools_ask_first_and_declined_calls_are_reported(stub_env, assistant):
    sent = []

    @tool(confirm=True)
    def send_email(to: str, body: str) -> str:
        """Send an email."""
        sent.append(to)
        return "sent"

    asked = []

    def decline(tool_, event):
        asked.append(event.signature)
        return False

    stub_env.queue(
        Reply(tool_calls=[ToolCallSpec("send_email", {"to": "a@b.c", "body": "hi"})]),
        Reply(text="I did not send it."),
    )
    _, _completion, events, _ = ask(assistant, tools="send_email", confirm=decline)
    assert asked == ['send_email(to="a@b.c", body="hi")'] and sent == []
    (result,) = tool_messages(stub_env.chat_requests[1])
    assert "The user declined this call" in result["content"]
    assert events[0].status == "declined"

    stub_env.reset()
    stub_env.queue(
        Reply(tool_calls=[ToolCallSpec("send_email", {"to": "a@b.c", "body": "hi"})]),
        Reply(text="Sent."),
    )
    ask(assistant, tools="send_email", confirm=lambda tool_, event: True)
    assert sent == ["a@b.c"]


def test_confirm_by_input_and_when_nobody_can_be_asked(stub_env, assistant, monkeypatch):
    @tool(confirm=True)
    def send_email(to: str) -> str:
        return "sent"

    monkeypatch.setattr("builtins.input", lambda prompt: "y")
    stub_env.queue(Reply(tool_calls=[ToolCallSpec("send_email", {"to": "x"})]), Reply("ok"))
    _, _, events, _ = ask(assistant, tools="send_email")
    assert events[0].status == "ok"

    def no_stdin(prompt):
        raise OSError("reading from stdin while output is captured")

    monkeypatch.setattr("builtins.input", no_stdin)
    stub_env.reset()
    stub_env.queue(Reply(tool_calls=[ToolCallSpec("send_email", {"to": "x"})]), Reply("ok"))
    _, _, events, _ = ask(assistant, tools="send_email")
    assert events[0].status == "declined"
    assert "no way to ask" in tool_messages(stub_env.chat_requests[1])[0]["content"]


# --------------------------------------------------------------------------------- limits


def test_round_limit_then_the_model_must_answer(stub_env, assistant):
    assistant.settings.max_tool_rounds = 2
    again = [ToolCallSpec("list_variables", {})]
    stub_env.queue(Reply(tool_calls=again), Reply(tool_calls=again), Reply(text="Enough."))
    prepared, completion, events, _ = ask(assistant, tools="notebook")
    requests = stub_env.chat_requests
    assert len(requests) == 3 and len(events) == 2
    assert [r.body.get("tool_choice") for r in requests] == [None, None, "none"]
    assert completion.content == "Enough."
    footer = assistant.footer(prepared, completion)
    assert "2 tool calls" in footer and "max_tool_rounds" in footer


def test_tool_calls_after_the_limit_are_not_run(stub_env, assistant):
    assistant.settings.max_tool_rounds = 1
    again = [ToolCallSpec("list_variables", {})]
    stub_env.queue(Reply(tool_calls=again), Reply(tool_calls=again))
    prepared, _completion, events, _ = ask(assistant, tools="notebook")
    assert len(events) == 1 and len(stub_env.chat_requests) == 2
    assert "still asked for tools" in prepared.tool_note


def test_tool_time_limit_skips_the_rest(stub_env, assistant):
    assistant.settings.max_tool_seconds = 0.01

    @tool
    def slow(x: int) -> int:
        time.sleep(0.05)
        return x

    stub_env.queue(
        Reply(tool_calls=[ToolCallSpec("slow", {"x": 1}), ToolCallSpec("slow", {"x": 2})]),
        Reply(text="Partial."),
    )
    prepared, _, events, _ = ask(assistant, tools="slow")
    assert [e.status for e in events] == ["ok", "skipped"]
    second = stub_env.chat_requests[1]
    assert second.body["tool_choice"] == "none"
    assert "time allowed for tools" in tool_messages(second)[1]["content"]
    assert "max_tool_seconds" in prepared.tool_note


# ------------------------------------------------------------------------ protocol rules


def test_parallel_calls_run_in_order_with_matching_ids(stub_env, assistant):
    order = []

    @tool
    def step(n: int) -> str:
        order.append(n)
        return f"step {n}"

    specs = [ToolCallSpec("step", {"n": n}) for n in (1, 2, 3)]
    stub_env.queue(Reply(tool_calls=specs), Reply(text="All done."))
    ask(assistant, tools="step")
    assert order == [1, 2, 3]
    history = stub_env.chat_requests[1].body["messages"]
    assistant_turn = history[-4]
    assert assistant_turn["content"] == ""
    assert [c["id"] for c in assistant_turn["tool_calls"]] == [s.id for s in specs]
    assert [(m["tool_call_id"], m["content"]) for m in history[-3:]] == [
        (s.id, f"step {n}") for s, n in zip(specs, (1, 2, 3), strict=True)
    ]


def test_text_and_tool_calls_in_one_reply_and_the_next_turn_stays_valid(stub_env, assistant):
    @tool
    def lookup(q: str) -> str:
        return "42"

    stub_env.queue(
        Reply(text="Let me look that up.", tool_calls=[ToolCallSpec("lookup", {"q": "x"})]),
        Reply(text="It is 42."),
        Reply(text="You are welcome."),
    )
    _, completion, _, texts = ask(assistant, tools="lookup")
    assert completion.content == "Let me look that up.\n\nIt is 42."
    assert texts[-1].startswith("Let me look that up.\n\nIt is 42")
    ask(assistant, "Thanks!")  # the recorded turn is plain user/assistant text
    roles = [m["role"] for m in stub_env.chat_requests[-1].body["messages"]]
    assert roles == ["system", "user", "assistant", "user"]


def test_forced_tool_choice_applies_to_the_first_request_only(stub_env, assistant):
    stub_env.queue(
        Reply(tool_calls=[ToolCallSpec("get_last_error", {})]), Reply(text="A KeyError.")
    )
    ask(assistant, tools="notebook", params={"tool_choice": "get_last_error"})
    first, second = stub_env.chat_requests
    assert first.body["tool_choice"] == {"type": "function", "function": {"name": "get_last_error"}}
    assert second.body["tool_choice"] == "auto"


def test_vllm_dialect_fragmented_arguments_foreign_ids_and_required(
    stub_env, assistant, monkeypatch
):
    stub_env.dialect = "vllm"
    assistant.settings.dialect = "openai"
    got = []

    @tool
    def lookup_customer(customer_id: int, fields: list[str]) -> str:
        got.append((customer_id, fields))
        return "found"

    long_arguments = {"customer_id": 123456, "fields": ["name", "email", "phone", "address"]}
    stub_env.queue(
        Reply(
            tool_calls=[
                ToolCallSpec("lookup_customer", long_arguments, id="call_0a1b2c3d4e5f6a7b"),
                ToolCallSpec("lookup_customer", {"customer_id": 2, "fields": []}),
            ]
        ),
        Reply(text="Found both."),
    )
    _, completion, _events, _ = ask(
        assistant, tools="lookup_customer", params={"tool_choice": "any"}
    )
    assert got == [(123456, ["name", "email", "phone", "address"]), (2, [])]
    first, second = stub_env.chat_requests
    assert first.body["tool_choice"] == "required"
    sent_ids = [c["id"] for c in second.body["messages"][-3]["tool_calls"]]
    assert sent_ids[0] != "call_0a1b2c3d4e5f6a7b" and len(sent_ids[0]) == 9
    assert [m["tool_call_id"] for m in tool_messages(second)] == sent_ids
    assert completion.content == "Found both."
    assert completion.usage is not None and completion.usage.prompt_tokens > 0
