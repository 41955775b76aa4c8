"""fit(): bound -> clean -> redact -> clip, the one way text reaches the model."""

from __future__ import annotations

import base64
import os
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import mistral_magic.context.fit as fit_module
from mistral_magic.context.fit import (
    CLIPPED,
    EDGE_CHARS,
    bound,
    bound_join,
    clean_text,
    fit,
    name_inline_data,
)
from mistral_magic.context.notebook import collect_notebook
from mistral_magic.context.redact import REDACTED, Redactor

KEY = "mk-7fQ2pLx9Rt4vZ8wY3nB6cD1eH5jK"  # 31 characters, no known format: only the literal


def pieces_of(secret: str, size: int = 8) -> list[str]:
    return [secret[i : i + size] for i in range(len(secret) - size + 1)]


def leaks(text: str, secret: str = KEY) -> list[str]:
    return [piece for piece in pieces_of(secret) if piece in text]


@pytest.mark.parametrize("offset", range(0, 40, 3))
@pytest.mark.parametrize("middle", [False, True])
def test_a_key_across_the_final_edge_is_never_sent_in_part(offset, middle):
    # clip-then-redact sent "mk-7fQ2pLx9Rt4vZ8wY3nB6…": 23 of its 31 characters
    text = "x" * offset + KEY + " and more text after it" * 3
    shown = fit(text, 30, Redactor([KEY]), middle=middle)
    assert len(shown) <= 30
    assert not leaks(shown)


@pytest.mark.parametrize("where", [-40, -31, -20, -5, 0, 5])
@pytest.mark.parametrize("middle", [False, True])
def test_a_key_across_the_bound_cut_is_never_sent_in_part(where, middle):
    max_chars = 200
    head = 2 * (max_chars // 3 if middle else max_chars) + 2 * EDGE_CHARS
    # many secrets before the cut shrink the text: the cut region moves towards the front
    prefix = ("Bearer abcdefgh12345678 " * 40)[: head + where]
    text = prefix + KEY + "z" * 50_000 + (KEY + "t" * 3000)
    shown = fit(text, max_chars, Redactor([KEY]), middle=middle)
    assert not leaks(shown)


@settings(max_examples=300, deadline=None)
@given(
    before=st.text(alphabet="ab =:'\"\n\x1b[m", max_size=3000),
    after=st.text(alphabet="ab =:'\"\n", max_size=3000),
    repeats=st.integers(min_value=1, max_value=4),
    max_chars=st.integers(min_value=10, max_value=400),
    middle=st.booleans(),
)
def test_no_part_of_a_key_gets_through_any_cut(before, after, repeats, max_chars, middle):
    text = (before + KEY + after) * repeats
    shown = fit(text, max_chars, Redactor([KEY]), middle=middle)
    assert len(shown) <= max_chars
    assert not leaks(shown)


def test_short_text_is_only_cleaned_and_redacted():
    redactor = Redactor([KEY])
    assert fit(f"\x1b[31mred\x1b[0m {KEY}", 100, redactor) == f"red {REDACTED}"
    # cleaning must neither break a secret nor hide one
    assert not leaks(fit(f"\x1b[{KEY}", 100, redactor))
    assert "abcdefghij" not in fit("\x1b[sk-abcdefghij0123456789xyz", 100, redactor)
    assert fit("API_KEY=\x1b[1mabc123def\x1b[0m", 100, redactor) == f"API_KEY={REDACTED}"
    assert fit("a\r\nb\rc", 100, None) == "a\nb\nc"


def test_bound_keeps_head_and_tail_around_a_marked_cut():
    assert bound("abcdef", 10) == "abcdef"
    cut = bound("a" * 100 + "b" * 100, 10, 10)
    assert cut.startswith("a" * 10) and cut.endswith("b" * 10) and len(cut) < 40
    shown = fit("a" * 10_000 + "b" * 10_000, 300, None, middle=True)
    assert shown.startswith("a" * 100) and shown.endswith("b" * 100)
    assert shown.count(CLIPPED) == 1


def test_bound_join_touches_only_what_it_keeps():
    parts = ["line\n"] * 2_000_000  # 10 MB of one-line chunks
    text = bound_join(parts, 1000, 1000)
    assert len(text) < 2100
    assert bound_join(["a", "b"], 10) == "ab"
    assert bound_join(["a", "b", "c"], 1, 1, sep="-") == "a" + bound("abc", 1, 1)[1:-1] + "c"


def test_inline_images_and_base64_blobs_are_named_not_sent():
    png = base64.b64encode(os.urandom(3000)).decode()
    markdown = (
        f'Architecture:\n<img src="data:image/png;base64,{png}" alt="the model">\n'
        f"![loss curve](data:image/jpeg;base64,{png})\n"
        f"raw = '{png}'\n"
        "hex digest: " + "a1b2c3d4" * 16 + "\n"
    )
    cleaned = clean_text(markdown)
    assert png[:40] not in cleaned and "base64," not in cleaned
    assert '<img src="[inline image: image/png, 3.0 kB]" alt="the model">' in cleaned
    assert "![loss curve]([inline image: image/jpeg, 3.0 kB])" in cleaned
    assert "raw = '[base64 data: 3.0 kB]'" in cleaned
    assert "a1b2c3d4" * 16 in cleaned  # a hex digest is text, not a blob
    assert name_inline_data("x" * 500) == "x" * 500


def test_undecodable_text_is_escaped_not_an_error():
    assert fit("caf\udce9 ok", 100, Redactor()) == "caf\\udce9 ok"
    fit("\udcff" * 10_000, 100, Redactor()).encode("utf-8")


def test_a_huge_error_value_costs_a_bounded_amount_of_work(monkeypatch):
    """The server packs the notebook on every active-cell change: a 52 MB error value must
    not be scanned (ANSI, redaction) as a whole before it is clipped."""
    seen: list[int] = []
    ansi = fit_module.ANSI

    class Spy:
        def sub(self, replacement: Any, text: str) -> str:
            seen.append(len(text))
            return ansi.sub(replacement, text)

    original = Redactor.redact_counting

    def counting(self: Redactor, text: str) -> tuple[str, int]:
        seen.append(len(text))
        return original(self, text)

    monkeypatch.setattr(fit_module, "ANSI", Spy())
    monkeypatch.setattr(Redactor, "redact_counting", counting)
    value = "\x1b[31mboom\x1b[0m " + "0123456789" * 5_200_000
    notebook = {
        "cells": [
            {
                "cell_type": "code",
                "execution_count": 1,
                "source": "raise ValueError(big)",
                "metadata": {},
                "outputs": [
                    {"output_type": "stream", "name": "stdout", "text": [value]},
                    {
                        "output_type": "error",
                        "ename": "ValueError",
                        "evalue": value,
                        "traceback": ["\x1b[31mValueError\x1b[0m: " + value],
                    },
                ],
            }
        ]
    }
    items = collect_notebook(notebook, active_cell=0)
    assert {item.key for item in items} == {"active", "error"}
    assert all(len(item.text) < 12_000 for item in items)
    assert seen and max(seen) < 300_000, max(seen)
