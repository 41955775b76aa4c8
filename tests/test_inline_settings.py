"""The settings of inline completion: Codestral's base URL follows its environment variable
until set and is shown without credentials; its key is read from the environment only and
shown as set / not set; the budgets are checked when set; which way completions ask (FIM
from the Codestral model's card, the chat model, off)."""

from __future__ import annotations

import pytest
from traitlets import TraitError

from mistral_magic.api.models import ModelCatalog
from mistral_magic.config import Mistral
from mistral_magic.engine.inline import choose_route


def test_codestral_base_url_follows_the_environment_until_set(monkeypatch):
    monkeypatch.delenv("MISTRAL_CODESTRAL_BASE_URL", raising=False)
    settings = Mistral()
    assert settings.codestral_base_url == ""
    monkeypatch.setenv("MISTRAL_CODESTRAL_BASE_URL", "http://one:8000/v1")
    assert settings.codestral_base_url == "http://one:8000/v1"
    settings.codestral_base_url = "http://two:8000/v1"
    monkeypatch.setenv("MISTRAL_CODESTRAL_BASE_URL", "http://three:8000/v1")
    assert settings.codestral_base_url == "http://two:8000/v1"
    with pytest.raises(TraitError, match="codestral_base_url"):
        settings.codestral_base_url = "codestral.mistral.ai/v1"  # no scheme


def test_codestral_credentials_are_never_shown(monkeypatch):
    monkeypatch.setenv("MISTRAL_CODESTRAL_API_KEY", "cs-secret-key-0123456789")
    monkeypatch.setenv("MISTRAL_CODESTRAL_BASE_URL", "http://dave:pw-9876@gpu:8000/v1")
    settings = Mistral()
    values = settings.effective()
    assert values["codestral_api_key"] == "set"
    assert values["codestral_base_url"] == "http://[credentials]@gpu:8000/v1"
    help_text = Mistral.class_get_help(settings)
    for shown in (repr(values), help_text):
        assert "cs-secret" not in shown and "pw-9876" not in shown and "dave" not in shown
    monkeypatch.delenv("MISTRAL_CODESTRAL_API_KEY")
    assert Mistral().effective()["codestral_api_key"] == "not set"


def test_inline_defaults_and_bounds():
    settings = Mistral()
    assert (settings.codestral_model, settings.inline_max_tokens) == ("codestral-latest", 64)
    with pytest.raises(TraitError, match="inline_max_tokens must be 1 or more"):
        settings.inline_max_tokens = 0
    with pytest.raises(TraitError, match="inline_prefix_chars must be 0 or more"):
        settings.inline_prefix_chars = -1


def _catalog(*cards: dict[str, object]) -> ModelCatalog:
    return ModelCatalog.from_payload({"data": list(cards)})


CODESTRAL_CARD = {
    "id": "codestral-2508",
    "aliases": ["codestral-latest"],
    "max_context_length": 256000,
    "capabilities": {"completion_chat": True, "completion_fim": True},
}


def test_the_route_follows_the_codestral_card(monkeypatch):
    """FIM comes from the one card source (the catalog of GET /models, declarations over it),
    by id or alias; no card, or a card without completion_fim, means the chat model."""
    for name in ("MISTRAL_CODESTRAL_API_KEY", "MISTRAL_CODESTRAL_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MISTRAL_API_KEY", "main-key")
    settings = Mistral()
    catalog = _catalog(CODESTRAL_CARD)
    route = choose_route(settings, catalog.capabilities("codestral-latest"))
    assert (route.mode, route.model, route.codestral) == ("fim", "codestral-latest", False)
    assert choose_route(settings, _catalog().capabilities("codestral-latest")).mode == "chat"
    assert choose_route(settings, None).mode == "chat"
    # A declaration wins over the card (a server whose cards say nothing of FIM, or wrongly).
    declared = {"codestral-latest": {"completion_fim": False}}
    assert choose_route(settings, catalog.capabilities("codestral-latest", declared)).mode == "chat"
    settings.codestral_model = "codestral-2508"
    assert choose_route(settings, catalog.capabilities("codestral-2508")).mode == "fim"


def test_inline_stays_off_until_a_model_server_is_configured(monkeypatch):
    for name in (
        "MISTRAL_API_KEY",
        "MISTRAL_BASE_URL",
        "MISTRAL_CODESTRAL_API_KEY",
        "MISTRAL_CODESTRAL_BASE_URL",
    ):
        monkeypatch.delenv(name, raising=False)
    capabilities = _catalog(CODESTRAL_CARD).capabilities("codestral-latest")
    assert choose_route(Mistral(), capabilities).mode == "off"
    monkeypatch.setenv("MISTRAL_CODESTRAL_API_KEY", "cs-key")
    route = choose_route(Mistral(), None)
    assert (route.mode, route.codestral) == ("fim", True)
