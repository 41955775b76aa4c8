"""Placeholder expansion, conversation memory and request assembly."""

from __future__ import annotations

import pytest

from mistral_magic.api.request import build_chat_body
from mistral_magic.engine.conversation import Conversation
from mistral_magic.engine.prepare import WireTarget, expand_placeholders, prepare
from mistral_magic.tools import Tool, Toolbox

PLATFORM = WireTarget("https://api.mistral.ai/v1", "mistral")
VLLM = WireTarget("http://gpu-host:8000/v1", "openai")


def describe(value, name):
    return f"{name}: {type(value).__name__} = {value!r}"


NS = {"df": [1, 2, 3], "x": 5}


def test_known_names_expand_and_other_braces_stay():
    text, names = expand_placeholders("Explain {df} with {unknown} and {x}", NS, describe)
    assert "df: list = [1, 2, 3]" in text and "x: int = 5" in text
    assert "{unknown}" in text
    assert names == ["df", "x"]


def test_braces_in_json_code_and_fstrings_are_left_alone():
    prompt = (
        'Given {"a": 1} and {1, 2}, why does `f"{x}"` fail?\n'
        "```python\nprint(f'{df}')\nd = {x: 1}\n```\n"
        "Also {{df}} and '{{x}}'.format(x=1) literally."
    )
    text, names = expand_placeholders(prompt, NS, describe)
    assert '{"a": 1}' in text and "{1, 2}" in text
    assert '`f"{x}"`' in text and "print(f'{df}')" in text and "d = {x: 1}" in text
    # doubled braces are not an escape to undo: a format string in a question stays as typed
    assert "Also {{df}} and '{{x}}'.format(x=1) literally." in text
    assert names == []


def test_conversation_keeps_newest_turns_within_budget():
    conv = Conversation()
    for i in range(50):
        conv.add(f"question {i} " + "word " * 40, f"answer {i} " + "word " * 40)
    messages = conv.messages(500, "mistral-large-2407")
    assert messages[-1]["content"].startswith("answer 49")
    assert messages[0]["role"] == "user"
    assert 2 <= len(messages) < 100
    conv.reset()
    assert conv.messages(500, "mistral-large-2407") == []


def test_request_has_system_history_and_question_in_order():
    conv = Conversation()
    conv.add("first?", "first answer")
    prepared = prepare(
        "second?",
        model="mistral-large-2407",
        target=PLATFORM,
        items=[],
        conversation=conv,
        params={"max_tokens": 100},
        budget=1000,
        history_budget=1000,
    )
    roles = [m["role"] for m in prepared.messages]
    assert roles == ["system", "user", "assistant", "user"]
    assert prepared.messages[-1]["content"] == "second?"
    assert prepared.prompt_tokens > 0 and prepared.exact_count


def lookup(customer_id: int) -> dict:
    """Look a customer up."""
    return {"id": customer_id}


def _prepared(target: WireTarget, **kwargs):
    toolbox = Toolbox({"lookup": Tool.from_function(lookup)})
    return prepare(
        "Who is customer 7?",
        model="mistral-large-2407",
        target=target,
        params={"random_seed": 7, "tool_choice": "lookup", "max_tokens": 50},
        toolbox=toolbox,
        **kwargs,
    )


@pytest.mark.parametrize("target", [PLATFORM, VLLM], ids=["mistral", "vllm"])
def test_the_body_is_the_wire_body_of_the_dialect(target):
    prepared = _prepared(target)
    body = prepared.body
    assert body["stream"] is True and body["messages"] == prepared.messages
    assert body["tool_choice"] == {"type": "function", "function": {"name": "lookup"}}
    assert body["tools"][0]["function"]["name"] == "lookup"
    if target.dialect == "openai":
        assert body["seed"] == 7 and "random_seed" not in body
        assert body["stream_options"] == {"include_usage": True}
    else:
        assert body["random_seed"] == 7 and "seed" not in body
    # what the client builds from the send arguments, with the same builder and dialect
    messages, params = prepared.send_arguments()
    model = params.pop("model")
    rebuilt = build_chat_body(messages, params, model=model, dialect=target.dialect, stream=True)
    assert rebuilt == body


def test_the_cache_key_ignores_streaming_and_follows_the_server():
    streamed = _prepared(PLATFORM)
    whole = _prepared(PLATFORM, stream=False)
    assert "stream" not in whole.body
    assert streamed.cache_key == whole.cache_key
    assert _prepared(VLLM).cache_key != streamed.cache_key


def test_retarget_rewrites_the_body_for_the_new_dialect():
    prepared = _prepared(PLATFORM)
    prepared.retarget(VLLM)
    assert prepared.target == VLLM and prepared.body == _prepared(VLLM).body


def test_explain_and_fix_are_worded_by_the_engine():
    fix = prepare("ignored", kind="fix", error_count=4, model="mistral-large-2407", target=VLLM)
    assert fix.prompt.startswith("Fix the error in In[4]")
    assert fix.messages[-1] == {"role": "user", "content": fix.prompt}


def test_no_system_message_when_none_is_wanted():
    bare = prepare("Hi", model="mistral-large-2407", target=PLATFORM, system=None, stream=False)
    assert bare.messages == [{"role": "user", "content": "Hi"}]
    assert bare.body == {"model": "mistral-large-2407", "messages": bare.messages}
