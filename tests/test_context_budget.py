"""Token counting (exact against mistral-common's own v3 encoder) and packing."""

from __future__ import annotations

import json
import string
import threading
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mistral_magic.context import tokenizers
from mistral_magic.context.budget import (
    CONTEXT_HEADER,
    CONTEXT_WINDOW,
    TRUNCATION_MARKER,
    count_request_tokens,
    count_tokens,
    is_exact,
    omitted_note,
    pack,
    render_context,
    warm_up,
)
from mistral_magic.context.items import ContextItem, priority_for

MODEL = "mistral-large-2407"


# --------------------------------------------------------------------------------------------
# The reference: mistral-common's MistralTokenizer.v3 (only the tests import it).


@pytest.fixture(scope="module")
def reference() -> Any:
    from mistral_common.tokens.tokenizers.mistral import MistralTokenizer

    return MistralTokenizer.v3()


def to_request(messages: list[dict], tools: list[dict] | None) -> Any:
    """API-shape dicts -> mistral-common ChatCompletionRequest, field by field."""
    from mistral_common.protocol.instruct.messages import (
        AssistantMessage,
        SystemMessage,
        ToolMessage,
        UserMessage,
    )
    from mistral_common.protocol.instruct.request import ChatCompletionRequest
    from mistral_common.protocol.instruct.tool_calls import Function, FunctionCall, Tool, ToolCall

    converted: list[Any] = []
    for message in messages:
        role = message["role"]
        if role == "user":
            converted.append(UserMessage(content=message["content"]))
        elif role == "system":
            converted.append(SystemMessage(content=message["content"]))
        elif role == "assistant":
            calls = [
                ToolCall(
                    id=call.get("id", "null"),
                    function=FunctionCall(
                        name=call["function"]["name"], arguments=call["function"]["arguments"]
                    ),
                )
                for call in message.get("tool_calls") or []
            ]
            converted.append(
                AssistantMessage(
                    content=message.get("content") or None,
                    tool_calls=calls or None,
                    prefix=message.get("prefix", False),
                )
            )
        elif role == "tool":
            converted.append(
                ToolMessage(
                    content=message["content"],
                    tool_call_id=message.get("tool_call_id"),
                    name=message.get("name"),
                )
            )
    mc_tools = [Tool(function=Function(**tool["function"])) for tool in tools] if tools else None
    return ChatCompletionRequest(messages=converted, tools=mc_tools)


def reference_count(reference: Any, messages: list[dict], tools: list[dict] | None = None) -> int:
    return len(reference.encode_chat_completion(to_request(messages, tools)).tokens)


def unvalidated_reference_count(reference: Any, messages: list[dict], tools=None) -> int:
    """The same normalizer + v3 encoder, skipping the request validator (for layouts the
    validator forbids but the encoder defines, e.g. a system message after an assistant)."""
    request = to_request(messages, tools)
    instruct = reference._instruct_request_normalizer.from_chat_completion_request(request)
    return len(reference.instruct_tokenizer.encode_instruct(instruct).tokens)


WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city ☀",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string", "description": "City name, e.g. Paris"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
            },
            "required": ["city"],
        },
    },
}
DF_TOOL = {
    "type": "function",
    "function": {
        "name": "describe_dataframe",
        "description": "Describe a DataFrame in the notebook",
        "parameters": {"type": "object", "properties": {"name": {"type": "string"}}},
    },
}


def call(call_id: str, name: str, arguments: str) -> dict:
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


HAND_WRITTEN: list[tuple[str, list[dict], list[dict] | None]] = [
    ("lone user", [{"role": "user", "content": "Hi"}], None),
    ("empty user", [{"role": "user", "content": ""}], None),
    (
        "system + user",
        [
            {"role": "system", "content": "You are a helpful notebook assistant. "},
            {"role": "user", "content": "Why does my merge duplicate rows?"},
        ],
        None,
    ),
    (
        "multi-turn with two system messages",
        [
            {"role": "system", "content": "Be brief."},
            {"role": "system", "content": "Answer in French."},
            {"role": "user", "content": "What is a DataFrame?"},
            {"role": "assistant", "content": "Un tableau à deux dimensions.  "},
            {"role": "user", "content": "And a Series?"},
        ],
        None,
    ),
    (
        "consecutive user messages are merged",
        [
            {"role": "user", "content": "first"},
            {"role": "user", "content": "second"},
            {"role": "assistant", "content": "ok"},
            {"role": "user", "content": "third"},
        ],
        None,
    ),
    ("tools", [{"role": "user", "content": "Weather in Paris?"}], [WEATHER_TOOL, DF_TOOL]),
    (
        "tool round trip",
        [
            {"role": "system", "content": "Use tools when useful."},
            {"role": "user", "content": "Weather in Paris?"},
            {
                "role": "assistant",
                "content": "",
                "tool_calls": [call("D681PevKs", "get_weather", '{"city": "Paris"}')],
            },
            {
                "role": "tool",
                "content": '{"temp": 21.5, "sky": "clear ☀"}',
                "tool_call_id": "D681PevKs",
                "name": "get_weather",
            },
            {"role": "assistant", "content": "It is 21.5 °C and clear."},
            {"role": "user", "content": "And in Lyon?"},
        ],
        [WEATHER_TOOL],
    ),
    (
        "parallel tool calls, non-JSON arguments and result",
        [
            {"role": "user", "content": "Describe df and sales"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    call("abcDEF123", "describe_dataframe", '{"name":"df"}'),
                    call("abcDEF124", "describe_dataframe", "not json at all"),
                ],
            },
            {"role": "tool", "content": "df: 3 rows", "tool_call_id": "abcDEF123"},
            {"role": "tool", "content": "", "tool_call_id": "abcDEF124"},
        ],
        [DF_TOOL],
    ),
    (
        "tool result that is a JSON scalar",
        [
            {"role": "user", "content": "count rows"},
            {"role": "assistant", "tool_calls": [call("xyzXYZ789", "describe_dataframe", "")]},
            {"role": "tool", "content": "42", "tool_call_id": "xyzXYZ789"},
        ],
        [DF_TOOL],
    ),
    (
        "assistant prefix",
        [
            {"role": "user", "content": "Write code"},
            {"role": "assistant", "content": "```python\n", "prefix": True},
        ],
        None,
    ),
    (
        "unicode and whitespace",
        [
            {"role": "system", "content": "  \n\tsystème  "},
            {"role": "user", "content": "  lots   of\n\n whitespace \t 日本語 🎉 \u200b "},
        ],
        None,
    ),
    ("long text", [{"role": "user", "content": "The quick brown fox. " * 3000}], None),
    (
        "code and markdown",
        [
            {
                "role": "user",
                "content": "```python\ndf = pd.read_csv('x.csv')\ndf.groupby('a').sum()\n```\n"
                "KeyError: 'a'\n\n| a | b |\n|---|---|\n| 1 | 2 |",
            }
        ],
        None,
    ),
]


@pytest.mark.parametrize(
    ("messages", "tools"), [(m, t) for _, m, t in HAND_WRITTEN], ids=[n for n, _, _ in HAND_WRITTEN]
)
def test_request_count_matches_mistral_common(reference, messages, tools):
    assert count_request_tokens(messages, MODEL, tools) == reference_count(
        reference, messages, tools
    )


def test_documented_measurements():
    # mistral-api.md §6: a lone user "Hi" is 4 tokens.
    assert count_request_tokens([{"role": "user", "content": "Hi"}], MODEL) == 4


def test_layouts_the_validator_forbids_still_follow_the_encoder(reference):
    messages = [
        {"role": "system", "content": "S1"},
        {"role": "user", "content": "a"},
        {"role": "assistant", "content": "b"},
        {"role": "system", "content": "S2"},  # splits the assistant run; joins the system prompt
        {"role": "assistant", "content": "c"},
        {"role": "user", "content": "d"},
    ]
    expected = unvalidated_reference_count(reference, messages)
    assert count_request_tokens(messages, MODEL) == expected


def test_text_chunks_count_like_strings(reference):
    chunked = [
        {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}
    ]
    plain = [{"role": "user", "content": "a\n\nb"}]
    assert count_request_tokens(chunked, MODEL) == reference_count(reference, plain)


# --------------------------------------------------------------------------------------------
# Generated conversations

texts = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",)),  # no lone surrogates
    max_size=200,
)
non_empty_texts = texts.filter(lambda t: t.strip() != "")
call_ids = st.text(alphabet=string.ascii_letters + string.digits, min_size=9, max_size=9)
names = st.from_regex(r"[a-z_][a-z0-9_]{0,15}", fullmatch=True)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(10**6), 10**6) | st.floats(allow_nan=False) | texts,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(texts, children, max_size=3),
    max_leaves=6,
)
arguments = st.one_of(
    st.dictionaries(names, json_values, max_size=3).map(json.dumps),
    st.dictionaries(names, json_values, max_size=3).map(lambda d: json.dumps(d, indent=1)),
    texts,
)
tool_contents = st.one_of(json_values.map(json.dumps), texts)
tool_definitions = st.builds(
    lambda name, description, props: {
        "type": "function",
        "function": {
            "name": name,
            "description": description,
            "parameters": {
                "type": "object",
                "properties": {p: {"type": "string", "description": d} for p, d in props.items()},
            },
        },
    },
    names,
    texts,
    st.dictionaries(names, texts, max_size=3),
)


@st.composite
def conversations(draw) -> tuple[list[dict], list[dict] | None]:
    messages: list[dict] = []
    if draw(st.booleans()):
        messages.append({"role": "system", "content": draw(non_empty_texts)})
    rounds = draw(st.integers(1, 4))
    ends_with_tool = draw(st.booleans())
    for index in range(rounds):
        messages.append({"role": "user", "content": draw(texts)})
        last = index == rounds - 1
        if last and not ends_with_tool:
            break
        if draw(st.booleans()) or (last and ends_with_tool):
            ids = draw(st.lists(call_ids, min_size=1, max_size=3, unique=True))
            calls = [call(i, draw(names), draw(arguments)) for i in ids]
            messages.append({"role": "assistant", "content": None, "tool_calls": calls})
            for i in ids:
                messages.append({"role": "tool", "content": draw(tool_contents), "tool_call_id": i})
            if last:
                break
        messages.append({"role": "assistant", "content": draw(non_empty_texts)})
    tools = draw(st.none() | st.lists(tool_definitions, min_size=1, max_size=2))
    return messages, tools


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(conversation=conversations())
def test_generated_conversations_match_mistral_common(reference, conversation):
    messages, tools = conversation
    assert count_request_tokens(messages, MODEL, tools) == reference_count(
        reference, messages, tools
    )


@settings(max_examples=200, deadline=None)
@given(text=texts)
def test_count_tokens_matches_the_v3_text_encoder(reference, text):
    encoder = reference.instruct_tokenizer.tokenizer
    assert count_tokens(text, MODEL) == len(encoder.encode(text, bos=False, eos=False))


# --------------------------------------------------------------------------------------------
# Models, estimates, loading


@pytest.mark.parametrize(
    ("model", "exact"),
    [
        ("mistral-large-2407", True),
        ("MISTRAL-LARGE-2407", True),
        ("mistralai/Mistral-Large-Instruct-2407", True),
        ("mistral-large-latest", False),
        ("mistral-small-latest", False),
        ("gpt-4o", False),
    ],
)
def test_is_exact(model, exact):
    assert is_exact(model) is exact


def test_other_mistral_models_use_the_v3_count_as_estimate():
    text = "Other Mistral models are counted with the v3 tokenizer."
    assert count_tokens(text, "mistral-large-latest") == count_tokens(text, MODEL)
    assert count_tokens(text, "codestral-latest") == count_tokens(text, MODEL)


def test_unknown_models_use_the_documented_character_estimate():
    assert count_tokens("x" * 32, "gpt-4o") == 10  # ceil(32 / 3.2)
    assert count_tokens("x" * 33, "gpt-4o") == 11
    assert count_tokens("", "gpt-4o") == 0
    messages = [{"role": "system", "content": "x" * 32}, {"role": "user", "content": "y" * 16}]
    # 1 to start, then per message 4 + ceil(chars / 3.2)
    assert count_request_tokens(messages, "gpt-4o") == 1 + (4 + 10) + (4 + 5)


def test_warm_up_loads_once_across_threads():
    results: list[bool] = []
    threads = [threading.Thread(target=lambda: results.append(warm_up())) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [True] * 8
    assert tokenizers.load(tokenizers.V3) is tokenizers.load(tokenizers.V3) is not None


def test_context_window():
    assert CONTEXT_WINDOW == 131072


# --------------------------------------------------------------------------------------------
# Packing


def item(kind: str, key: str, text: str, rank: int = 0, label: str | None = None) -> ContextItem:
    return ContextItem(kind, key, label or key, text, priority_for(kind, rank))


def words(n: int) -> str:
    return "\n".join(f"line {i}: some words about the data frame" for i in range(n))


def test_pack_includes_by_priority_and_skips_what_does_not_fit():
    items = [
        item("variable", "var:small", "small = 1", 0),
        item("cell", "cell:2", words(400), 1, "In[2]"),
        item("named", "var:sales", "sales: pandas DataFrame, 10 rows × 2 columns", 0),
        item("error", "error", "ZeroDivisionError: division by zero", 0),
        item("variable", "var:big", words(300), 1),
    ]
    packed = pack(items, 300, model=MODEL)
    keys = [i.key for i in packed.included]
    assert keys[:3] == ["var:sales", "error", "cell:2"]  # priority order
    assert "var:small" in keys  # a later small item still fits
    assert [i.key for i in packed.omitted] == ["var:big"]  # variables are never cut
    assert packed.truncated == ["cell:2"]
    cut = next(i for i in packed.included if i.key == "cell:2")
    assert cut.text.endswith(TRUNCATION_MARKER)
    assert cut.text.startswith("line 0:")
    assert packed.tokens <= 300
    rendered = render_context(packed.included)
    assert abs(count_tokens(rendered, MODEL) - packed.tokens) <= 2 * len(packed.included)


def test_pack_everything_fits():
    items = [item("cell", f"cell:{n}", f"x = {n}", rank=10 - n) for n in range(1, 6)]
    packed = pack(items, 8000, model=MODEL)
    assert [i.key for i in packed.included] == [f"cell:{n}" for n in range(5, 0, -1)]
    assert packed.omitted == [] and packed.truncated == []
    assert omitted_note(packed) == ""
    rendered = render_context(packed.included)
    assert abs(count_tokens(rendered, MODEL) - packed.tokens) <= 2 * len(items)


def test_pack_too_small_for_anything():
    packed = pack([item("cell", "cell:1", words(50), label="In[1]")], 20, model=MODEL)
    assert packed.included == [] and packed.tokens == 0
    assert [i.key for i in packed.omitted] == ["cell:1"]


def test_pack_with_estimates_for_other_models():
    items = [item("named", "var:a", "a" * 320), item("variable", "var:b", "b" * 3200)]
    packed = pack(items, 400, model="gpt-4o")
    assert [i.key for i in packed.included] == ["var:a"]
    assert [i.key for i in packed.omitted] == ["var:b"]


def test_omitted_note_names_what_was_left_out():
    items = [
        item("named", "var:sales", words(20), 0),
        item("cell", "cell:3", words(400), 0, "In[3]"),
        item("cell", "cell:2", words(400), 1, "In[2]"),
        item("dataframe", "var:df_big", words(400), 0, "df_big · DataFrame 1,000,000×20"),
    ]
    packed = pack(items, 8000 // 20, model=MODEL)  # room for the first item only
    note = omitted_note(packed)
    assert note.startswith("Left out to fit the 400-token budget: ")
    assert "In[2]" in note and "df_big" in note
    assert omitted_note(pack(items, 40_000, model=MODEL)) == ""
    many = [item("variable", f"var:v{i}", words(80), i) for i in range(12)]
    note = omitted_note(pack(many, 250, model=MODEL))
    assert note == (
        "Left out to fit the 250-token budget: v0, v1, v2, v3, v4, v5, v6, v7 and 4 more."
    )


def test_omitted_note_mentions_shortened_items():
    packed = pack([item("cell", "cell:3", words(400), 0, "In[3]")], 1000, model=MODEL)
    assert omitted_note(packed) == "Shortened to fit the 1,000-token budget: In[3]."


def test_omitted_note_uses_thousands_separators():
    items = [item("variable", "var:x", words(3000))]
    assert "8,000-token budget" in omitted_note(pack(items, 8000, model=MODEL))


def test_render_context_layout():
    items = [
        item("named", "var:a", "a: int = 1", label="a · int"),
        item("cell", "cell:1", "x", label="In[1]"),
    ]
    text = render_context(items)
    assert text == f"{CONTEXT_HEADER}\n\n### a · int\na: int = 1\n\n### In[1]\nx"
    assert render_context([]) == ""


@pytest.mark.parametrize("model", [MODEL, "mistral-large-2411", "gpt-4o"])
def test_headers_of_fewer_origins_cost_no_more(model):
    """pack() counts the header of all candidates; what it includes may come from fewer
    origins, whose header must not cost more (the budget would be exceeded)."""
    from mistral_magic.context.budget import MIXED_CONTEXT_HEADER, NOTEBOOK_CONTEXT_HEADER

    mixed = count_tokens(MIXED_CONTEXT_HEADER + "\n\n", model)
    assert count_tokens(NOTEBOOK_CONTEXT_HEADER + "\n\n", model) <= mixed
    assert count_tokens(CONTEXT_HEADER + "\n\n", model) <= mixed
