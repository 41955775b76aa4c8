"""The scrubber every quoted server text goes through: secrets out before clipping, URL
credentials in every form, credential-looking values, HTML named, ordinary words kept."""

from __future__ import annotations

import base64

import pytest

from mistral_magic.api.scrub import Scrubber

KEY = "Zq8v2LmN4pR7sT1uW3xY5zA6bC9dE0fG"


def test_the_key_is_removed_before_the_text_is_clipped():
    scrubber = Scrubber.for_client(KEY, None)
    for pad in range(0, 80, 7):  # the key straddling the clipping point at every offset
        quoted = scrubber.quote("x" * pad + KEY + " tail", 60)
        assert not any(KEY[i : i + 6] in quoted for i in range(len(KEY) - 5)), (pad, quoted)
        assert len(quoted) <= 60


def test_url_credentials_in_every_form():
    scrubber = Scrubber.for_client(None, "http://alice:s%40cret-pw@gpu:8000/v1")
    basic = base64.b64encode(b"alice:s@cret-pw").decode()
    text = f"alice:s%40cret-pw s@cret-pw Authorization: Basic {basic} http://x:y@other/v1"
    scrubbed = scrubber.scrub(text)
    assert "cret-pw" not in scrubbed and basic not in scrubbed and "x:y@" not in scrubbed


@pytest.mark.parametrize(
    "text",
    [
        "Authorization: Bearer sk-or-v1-0123456789abcdef",
        'api_key="mk-12345678"',
        "access_token=abcdefghijklmnopqrstuvwxyz",
    ],
)
def test_credential_looking_values_are_removed(text):
    assert "[REDACTED]" in Scrubber().scrub(text)


@pytest.mark.parametrize(
    "text",
    [
        "Missing bearer token",
        "Failed basic validation of the request",
        "max_tokens=2048 is above the limit",
        "Unexpected token something here",
    ],
)
def test_ordinary_error_words_are_kept(text):
    assert Scrubber().scrub(text) == text


def test_an_html_page_is_named_by_its_title_and_text_is_one_line():
    page = f"<!DOCTYPE html><html><head><title>502 Bad\nGateway {KEY}</title></head><body>..."
    assert Scrubber.for_client(KEY, None).quote(page) == "an HTML page (502 Bad Gateway [REDACTED])"
    assert Scrubber().quote("line one\r\n\tline\x1b[31m two") == "line one line [31m two"
