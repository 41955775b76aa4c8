"""The settings of inline completion: Codestral's base URL follows its environment variable
until set and is shown without credentials; its key is read from the environment only and
shown as set / not set; the budgets are checked when set."""

from __future__ import annotations

import pytest
from traitlets import TraitError

from mistral_magic.config import Mistral


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
