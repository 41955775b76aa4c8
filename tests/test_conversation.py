"""Placeholder expansion, conversation memory and request assembly."""

from __future__ import annotations

from mistral_magic.engine.prepare import Conversation, build_request, expand_placeholders


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
    prepared = build_request(
        "second?",
        model="mistral-large-2407",
        items=[],
        conversation=conv,
        params={"max_tokens": 100},
        context_budget=1000,
        history_budget=1000,
    )
    roles = [m["role"] for m in prepared.messages]
    assert roles == ["system", "user", "assistant", "user"]
    assert prepared.messages[-1]["content"] == "second?"
    assert prepared.prompt_tokens > 0 and prepared.exact_count
