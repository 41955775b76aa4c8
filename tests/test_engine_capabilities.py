"""The request builder and what the server's cards say: the window bounds everything, tools
are refused to a model that cannot call them, reasoning_effort goes to reasoning models only,
figures go as images to vision models (while they fit) and as words otherwise, and an alias's
tokens are counted as the dated model its card names."""

from __future__ import annotations

import base64
import io

import pytest
from PIL import Image

from mistral_magic.api.models import ModelCatalog
from mistral_magic.config import Mistral
from mistral_magic.context.figures import figure_from_png
from mistral_magic.context.items import KIND_CELL, ContextItem, priority_for
from mistral_magic.engine.conversation import Conversation
from mistral_magic.engine.prepare import WireTarget, prepare
from mistral_magic.tools.core import Tool, Toolbox, ToolSelectionError

TARGET = WireTarget("http://127.0.0.1:1/v1", "mistral")


def card(model_id: str, **fields) -> dict:
    capabilities = {
        "completion_chat": True,
        "function_calling": fields.pop("tools", True),
        "vision": fields.pop("vision", False),
        "reasoning": fields.pop("reasoning", False),
        "completion_fim": False,
    }
    return {"id": model_id, "capabilities": capabilities, "max_context_length": 131072, **fields}


CATALOG = ModelCatalog.from_payload(
    {
        "data": [
            card("small-window", max_context_length=6000),
            card("small-seer", max_context_length=6000, vision=True),
            card("seer", vision=True),
            card("thinker", reasoning=True),
            card("mute", tools=False),
            card("mistral-large-latest", name="mistral-large-2407", aliases=["mistral-large-2407"]),
        ]
    }
)


def cells(n: int, chars: int = 2000) -> list[ContextItem]:
    return [
        ContextItem(KIND_CELL, f"cell:{i}", f"In[{i}]", f"row {i} " + "lorem " * (chars // 6),
                    priority_for(KIND_CELL, i))
        for i in range(n)
    ]  # fmt: skip


def figure(width: int = 640, height: int = 480):
    out = io.BytesIO()
    Image.new("RGB", (width, height), (1, 2, 3)).save(out, format="PNG")
    return figure_from_png(base64.b64encode(out.getvalue()).decode(), "Out[3]", title="Ages")


def ask(model: str, **kwargs):
    settings = kwargs.pop("settings", Mistral())
    return prepare(
        kwargs.pop("question", "Why?"),
        model=model,
        target=TARGET,
        settings=settings,
        capabilities=CATALOG.capabilities(model),
        **kwargs,
    )


def test_the_window_less_max_tokens_bounds_context_and_history():
    conversation = Conversation()
    for i in range(10):
        conversation.add(f"question {i} " + "x " * 400, "answer " + "y " * 400)
    small = ask("small-window", items=cells(30), conversation=conversation)
    assert small.prompt_tokens + small.params["max_tokens"] <= 6000
    assert small.packed is not None and small.packed.included  # still some context
    large = ask("seer", items=cells(30), conversation=conversation)
    assert large.prompt_tokens > 6000  # the budget (8,000) and history (12,000) as set


def test_an_unknown_model_gets_the_conservative_window():
    unknown = prepare(
        "Why?",
        model="my-finetune",
        target=TARGET,
        settings=Mistral(context_budget=60000),
        items=cells(60, 4000),
        capabilities=CATALOG.capabilities("my-finetune"),
    )
    assert unknown.capabilities.window == 32768
    assert unknown.prompt_tokens + unknown.params["max_tokens"] <= 32768


def test_tools_are_refused_to_a_model_whose_card_says_it_cannot_call_them():
    def probe() -> str:
        """Look."""
        return "x"

    toolbox = Toolbox({"probe": Tool.from_function(probe)})
    with pytest.raises(ToolSelectionError, match="mute cannot call tools"):
        ask("mute", toolbox=toolbox)
    assert ask("seer", toolbox=toolbox).params["tools"][0]["function"]["name"] == "probe"


def test_reasoning_effort_only_for_reasoning_models():
    assert ask("thinker", params={"reasoning_effort": "high"}).body["reasoning_effort"] == "high"
    left_out = ask("seer", params={"reasoning_effort": "high"})
    assert "reasoning_effort" not in left_out.body
    assert left_out.notes == [
        "reasoning effort not sent: seer is not a reasoning model (the server's card says it "
        "does not)"
    ]
    setting = Mistral(reasoning_effort="low")
    assert ask("thinker", settings=setting).body["reasoning_effort"] == "low"
    quiet = ask("seer", settings=setting)
    assert "reasoning_effort" not in quiet.body and quiet.notes == []


def test_figures_go_as_images_to_vision_models_and_as_words_to_others():
    seen = ask("seer", figures=[figure()])
    chunks = seen.messages[-1]["content"]
    assert chunks[0] == {"type": "text", "text": "Why?"}
    assert chunks[1]["image_url"]["url"].startswith("data:image/png;base64,")
    assert seen.image_tokens == 1230 and seen.prompt_tokens > 1230 and not seen.exact_count
    assert "…" in seen.readable_body()["messages"][-1]["content"][1]["image_url"]["url"]
    told = ask("mute", figures=[figure()])
    assert told.messages[-1]["content"] == "Why?" and told.image_tokens == 0
    assert "Out[3] shows a figure (PNG, 640×480 px), titled 'Ages'" in told.messages[0]["content"]
    assert "a model with vision would see the figure itself" in told.notes[0]
    # a figure that does not fit what is left of the window goes as words
    tiny = ask("small-seer", figures=[figure(1024, 1024)], params={"max_tokens": 2000})
    assert tiny.figures == [] and [f.label for f in tiny.described] == ["Out[3]"]
    assert "no room left in the window" in tiny.notes[0]


def test_an_alias_is_counted_as_the_dated_model_its_card_names():
    latest = ask("mistral-large-latest")
    assert latest.counted_as == "mistral-large-2407" and latest.exact_count
    bare = prepare("Why?", model="mistral-large-latest", target=TARGET)
    assert bare.counted_as == "mistral-large-latest" and not bare.exact_count
