"""Token bounds without a tokenizer (issue #12: the first question after ``%load_ext`` loads
none when its context fits by far): the bound is never below the count, for every bundled
tokenizer; packing and requests built by the bound are those built by counting."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mistral_magic.config import Mistral
from mistral_magic.context import budget, tokenizers
from mistral_magic.context.budget import (
    count_request_tokens,
    count_tokens,
    pack,
    pack_whole,
    request_tokens_at_most,
    tokens_at_most,
)
from mistral_magic.context.items import KIND_CELL, KIND_NAMED, ContextItem, priority_for
from mistral_magic.engine import prepare as prepare_module
from mistral_magic.engine.prepare import WireTarget, prepare

#: One model per bundled tokenizer (SentencePiece v1, v2, v3, v7, v7m1; Tekken twice).
MODELS = [
    "mistral-medium-2312",
    "mistral-small-2402",
    "mistral-large-2407",
    "mistral-large-2411",
    "pixtral-large-2411",
    "open-mistral-nemo",
    "pixtral-12b-2409",
]
# Characters whose NFKC form is longer (no normalizer may expand them), leading spaces,
# byte fallback for CJK and emoji, combining marks, a lone surrogate.
TRICKY = ["ﷺ", "㍱", "ﬁ", "①", "ｱ", "Ａ", "e\u0301", "😀", " ", "  x", "\n\n", "x\udcff", "İß"]
texts = st.text(st.characters(blacklist_categories=("Cs",)), max_size=80) | st.sampled_from(TRICKY)
TARGET = WireTarget("http://127.0.0.1:1/v1", "mistral")


@pytest.mark.filterwarnings("ignore:.*from_model.*:FutureWarning")
@pytest.mark.parametrize("model", MODELS)
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=texts)
def test_a_text_never_has_more_tokens_than_its_bound(model, text):
    assert tokenizers.is_exact(model)
    assert count_tokens(text, model) <= tokens_at_most(text, model)


@pytest.mark.filterwarnings("ignore:.*from_model.*:FutureWarning")
@pytest.mark.parametrize("model", MODELS)
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(system=texts, question=texts.filter(bool))
def test_a_request_never_has_more_tokens_than_its_bound(model, system, question):
    messages = [{"role": "system", "content": system}, {"role": "user", "content": question}]
    bound = request_tokens_at_most(messages, model)
    assert bound is not None
    assert count_request_tokens(messages, model) <= bound


def test_estimates_are_bounded_with_their_calibration(monkeypatch):
    model = "mistral-large-latest"  # estimated with v3, times the learned factor
    monkeypatch.setitem(tokenizers._calibration, model, (3.5, 4))
    text = "import pandas as pd\ndf = pd.read_csv('sales.csv')"
    messages = [{"role": "user", "content": text}]
    assert count_tokens(text, model) <= tokens_at_most(text, model)
    assert count_request_tokens(messages, model) <= request_tokens_at_most(messages, model)
    # names that are not Mistral models: the character estimate
    assert count_tokens(text, "gpt-4o") <= tokens_at_most(text, "gpt-4o")


def test_requests_with_more_than_text_have_no_bound():
    chunks = [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]
    calls = [{"role": "assistant", "content": None, "tool_calls": []}]
    assert request_tokens_at_most(chunks, "mistral-large-2407") is None
    assert request_tokens_at_most(calls, "mistral-large-2407") is None


def items() -> list[ContextItem]:
    return [
        ContextItem(
            KIND_CELL, "cell:1", "In[1]", "import pandas as pd", priority_for(KIND_CELL, 2)
        ),
        ContextItem(KIND_NAMED, "var:df", "df", "DataFrame 3×2 ☕", priority_for(KIND_NAMED, 0)),
        ContextItem(KIND_CELL, "cell:2", "In[2]", "df.head()", priority_for(KIND_CELL, 1)),
    ]


@pytest.mark.parametrize("budget_tokens", [10, 40, 60, 120, 8000])
def test_packing_by_the_bound_is_packing_by_counting(monkeypatch, budget_tokens):
    by_bound = pack(items(), budget_tokens, model="mistral-large-2407")
    monkeypatch.setattr(budget, "pack_whole", lambda *a, **k: None)
    counted = pack(items(), budget_tokens, model="mistral-large-2407")
    assert by_bound.included == counted.included
    assert by_bound.omitted == counted.omitted and by_bound.truncated == counted.truncated
    assert by_bound.tokens == counted.tokens and by_bound.budget == counted.budget


def test_what_fits_by_far_is_packed_without_a_tokenizer(monkeypatch):
    def no_tokenizer(model: str):
        raise AssertionError("a tokenizer was asked for")

    monkeypatch.setattr(budget, "_counter", no_tokenizer)
    packed = pack_whole(items(), 8000, model="mistral-large-2407")
    assert packed is not None
    assert [item.key for item in packed.included] == ["var:df", "cell:2", "cell:1"]
    assert pack_whole(items(), 10, model="mistral-large-2407") is None  # only counting can tell
    monkeypatch.undo()
    assert packed.tokens == pack(items(), 8000, model="mistral-large-2407").tokens


@pytest.mark.parametrize("model", ["mistral-large-2407", "mistral-large-latest"])
@pytest.mark.parametrize("context_budget", [20, 60, 8000])
def test_the_request_built_by_the_bound_is_the_counted_one(monkeypatch, model, context_budget):
    settings = Mistral()
    settings.context_budget = context_budget

    def build():
        return prepare(
            "Why is df empty?", model=model, target=TARGET, settings=settings, items=items()
        )

    by_bound = build()
    monkeypatch.setattr(prepare_module, "pack_whole", lambda *a, **k: None)
    monkeypatch.setattr(prepare_module, "request_tokens_at_most", lambda *a, **k: None)
    monkeypatch.setattr(budget, "pack_whole", lambda *a, **k: None)
    counted = build()
    assert by_bound.body == counted.body
    assert by_bound.context_note == counted.context_note
    assert by_bound.packed.tokens == counted.packed.tokens
    assert by_bound.packed.budget == counted.packed.budget
    assert by_bound.prompt_tokens == counted.prompt_tokens


def test_a_question_whose_context_fits_by_far_loads_no_tokenizer(monkeypatch):
    def no_tokenizer(model: str):
        raise AssertionError("a tokenizer was asked for")

    monkeypatch.setattr(budget, "_counter", no_tokenizer)
    prepared = prepare(
        "Why is df empty?",
        model="mistral-large-2407",
        target=TARGET,
        settings=Mistral(),
        items=items(),
    )
    assert [item.key for item in prepared.packed.included] == ["var:df", "cell:2", "cell:1"]
    with pytest.raises(AssertionError, match="tokenizer"):
        _ = prepared.packed.tokens  # counted when read


def test_without_a_budget_or_a_confirmation_the_verdict_needs_no_count():
    from mistral_magic.engine.guard import SEND, check_cost, limits_set

    settings = Mistral()
    assert not limits_set(settings)
    prepared = prepare("Why?", model="mistral-large-2407", target=TARGET, settings=settings)
    assert check_cost(prepared, settings).verdict == SEND  # what the faces skip counting for
    settings.confirm_above = 0.5
    assert limits_set(settings) and not limits_set(settings, ask=False)
    settings.confirm_above = None
    settings.session_budget = 1.0
    assert limits_set(settings, ask=False)
