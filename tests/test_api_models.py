"""What each model can do comes from the server's GET /models (the same request that tells
the dialect, once per base URL): window, tools, vision, FIM, reasoning, deprecation, aliases;
conservative defaults where the server says nothing; declarations over both."""

from __future__ import annotations

import asyncio
import json
from datetime import date

import pytest

from mistral_magic.api import AsyncMistralClient, MistralClient
from mistral_magic.api.dialect import MEMORY
from mistral_magic.api.models import (
    ASSUMED_WINDOW,
    ModelCatalog,
    check_declarations,
    parse_date,
)
from tests.stub import Reply

USER = [{"role": "user", "content": "Say hello"}]


@pytest.fixture(autouse=True)
def no_dialect_in_the_environment(monkeypatch):
    monkeypatch.delenv("MISTRAL_DIALECT", raising=False)


def recorded(captures_dir, name: str) -> ModelCatalog:
    capture = json.loads((captures_dir / f"{name}.json").read_text(encoding="utf-8"))
    return ModelCatalog.from_payload(json.loads(capture["response"]["body"]))


def model_list_requests(stub) -> int:
    return sum(1 for r in stub.requests if r.method == "GET" and r.path == "/v1/models")


def test_the_2026_list_says_what_each_model_can_do(captures_dir):
    catalog = recorded(captures_dir, "models-list-2026-capabilities")
    small = catalog.capabilities("mistral-small-latest")
    assert (small.window, small.reasoning, small.vision, small.function_calling) == (
        262144,
        True,
        True,
        True,
    )
    assert small.assumed == () and small.card_id == "mistral-small-latest"
    codestral = catalog.capabilities("codestral-latest")
    assert codestral.completion_fim and not codestral.vision and not codestral.reasoning
    assert codestral.window == 256000
    embed = catalog.capabilities("mistral-embed")
    assert not embed.function_calling  # the card says so: no tools for it
    medium = catalog.capabilities("mistral-medium-2505")
    assert medium.deprecation_notice(date(2026, 12, 1)) == (
        "mistral-medium-2505 was deprecated on 2026-08-31; the server names "
        "mistral-medium-3-5 as its replacement."
    )
    assert medium.deprecation_notice(date(2026, 1, 1)).startswith(
        "mistral-medium-2505 is deprecated from 2026-08-31"
    )
    assert catalog.capabilities("mistral-large-latest").deprecation_notice() is None


def test_an_alias_finds_the_card_that_lists_it(captures_dir):
    everything = recorded(captures_dir, "models-list-2026-capabilities")
    only_latest = ModelCatalog([card for card in everything if card.id == "mistral-medium-latest"])
    medium = only_latest.capabilities("mistral-medium-3.5")
    assert medium.card_id == "mistral-medium-latest" and medium.listed
    assert medium.window == 262144 and medium.reasoning and medium.vision
    assert "mistral-medium-2604" in medium.aliases


def test_a_2024_card_without_capabilities_gets_the_conservative_defaults(captures_dir):
    catalog = recorded(captures_dir, "models-list-2024-permissions")
    tiny = catalog.capabilities("mistral-tiny")
    assert tiny.listed and tiny.window == ASSUMED_WINDOW
    assert (tiny.function_calling, tiny.vision, tiny.reasoning, tiny.completion_fim) == (
        True,
        False,
        False,
        False,
    )
    assert set(tiny.assumed) == {
        "max_context_length",
        "function_calling",
        "vision",
        "completion_fim",
        "reasoning",
    }
    assert tiny.assumption_notice() == (
        "mistral-tiny: the server's card for it gives no context window; assuming a "
        "32,768-token window, tools allowed, no vision, no reasoning "
        "(Mistral.model_capabilities can declare them)."
    )


def test_an_unlisted_model_and_an_unreadable_list_are_said(captures_dir):
    catalog = recorded(captures_dir, "models-list-2026-capabilities")
    missing = catalog.capabilities("my-finetune")
    assert not missing.listed and missing.window == ASSUMED_WINDOW
    assert missing.assumption_notice().startswith(
        "my-finetune: the server's model list has no card for it; assuming a 32,768-token"
    )
    down = ModelCatalog.missing("GET /models answered HTTP 401")
    assert (
        down.capabilities("x")
        .assumption_notice()
        .startswith("x: GET /models answered HTTP 401; assuming")
    )


def test_declarations_fill_in_what_vllm_cards_leave_out():
    vllm = ModelCatalog.from_payload(
        {"data": [{"id": "pixtral", "owned_by": "vllm", "max_model_len": 65536}]}
    )
    plain = vllm.capabilities("pixtral")
    assert plain.window == 65536 and not plain.vision and plain.assumption_notice() is None
    assert not plain.said("vision") and plain.said("max_context_length")
    declared = vllm.capabilities("pixtral", {"pixtral": {"vision": True}})
    assert declared.vision and declared.said("vision") and declared.window == 65536
    # a declaration wins over the card
    smaller = vllm.capabilities("pixtral", {"pixtral": {"max_context_length": 8192}})
    assert smaller.window == 8192


def test_declarations_are_checked_with_the_reason():
    assert check_declarations({"m": {"vision": True, "max_context_length": 4096}}) == {
        "m": {"vision": True, "max_context_length": 4096}
    }
    with pytest.raises(ValueError, match="unknown capability 'sight'"):
        check_declarations({"m": {"sight": True}})
    with pytest.raises(ValueError, match="vision of 'm' must be True or False"):
        check_declarations({"m": {"vision": "yes"}})
    with pytest.raises(ValueError, match="positive int"):
        check_declarations({"m": {"max_context_length": 0}})
    with pytest.raises(ValueError, match="must be a dict"):
        check_declarations(["m"])


def test_dates_of_cards():
    assert parse_date("2024-11-30T12:00:00Z") == date(2024, 11, 30)
    assert parse_date("2025-03-30") == date(2025, 3, 30)
    assert parse_date("soon") is None and parse_date(None) is None


@pytest.mark.parametrize("dialect", ["mistral", "vllm"])
def test_one_model_list_request_feeds_the_dialect_and_the_cards(stub, dialect):
    stub.dialect = dialect
    with MistralClient(api_key=stub.api_key, base_url=stub.base_url) as client:
        client.resolve_dialect()
        catalog = client.model_catalog()
        large = catalog.capabilities("mistral-large-latest")
        assert large.window == 262144
        assert large.vision is (dialect == "mistral")  # vLLM's cards do not say
    with MistralClient(api_key=stub.api_key, base_url=stub.base_url) as again:
        assert again.model_catalog() is catalog
        again.resolve_dialect()
    assert model_list_requests(stub) == 1
    with MistralClient(api_key=stub.api_key, base_url=stub.base_url) as fresh:
        fresh.model_catalog(refresh=True)
    assert model_list_requests(stub) == 2


def test_a_forced_dialect_still_reads_the_cards_once(stub):
    with MistralClient(api_key=stub.api_key, base_url=stub.base_url, dialect="mistral") as c:
        assert c.resolve_dialect().reason == "forced by the dialect setting"
        assert model_list_requests(stub) == 0
        assert c.model_catalog().find("codestral-latest") is not None
    with MistralClient(api_key=stub.api_key, base_url=stub.base_url) as auto:
        assert auto.resolve_dialect().reason.startswith("from /models")
    assert model_list_requests(stub) == 1


def test_async_client_reads_the_cards_from_the_same_request(stub):
    async def run():
        async with AsyncMistralClient(api_key=stub.api_key, base_url=stub.base_url) as client:
            choice = await client.resolve_dialect()
            catalog = await client.model_catalog()
            return choice, catalog

    choice, catalog = asyncio.run(run())
    assert choice.dialect == "mistral" and catalog.capabilities("mistral-small-latest").reasoning
    assert model_list_requests(stub) == 1


def test_a_list_that_cannot_be_read_is_asked_once_per_question_not_remembered(stub, monkeypatch):
    monkeypatch.delenv("MISTRAL_API_KEY", raising=False)
    with MistralClient(base_url=stub.base_url) as client:  # no key: /models answers 401
        client.resolve_dialect()
        catalog = client.model_catalog()  # the same answer, not a second request
        assert catalog.unavailable == "GET /models answered HTTP 401" and not len(catalog)
        assert model_list_requests(stub) == 1
        assert MEMORY.catalog(stub.base_url) is None
        monkeypatch.setenv("MISTRAL_API_KEY", stub.api_key)  # a key now: asked again
        assert client.model_catalog().find("mistral-large-2407") is not None
    assert model_list_requests(stub) == 2


@pytest.mark.parametrize("dialect", ["mistral", "vllm"])
def test_thinking_arrives_apart_from_the_answer_in_both_dialects(stub, dialect):
    stub.dialect = dialect
    with MistralClient(api_key=stub.api_key, base_url=stub.base_url) as client:
        stub.queue(Reply("144", thinking="12 times 12 is 144."))
        stream = client.stream(USER, model="magistral-medium-latest")
        deltas = list(stream)
        assert "".join(d.thinking for d in deltas) == "12 times 12 is 144."
        assert "".join(d.text for d in deltas) == "144"
        stub.queue(Reply("144", thinking="12 times 12 is 144."))
        whole = client.complete(USER, model="magistral-medium-latest")
        assert (whole.content, whole.thinking) == ("144", "12 times 12 is 144.")
