"""What an inline completion sends (prompt and suffix, the kernel's scope, redacted then
clipped) and how a chat model's answer is cut to the insertion, piece by piece."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mistral_magic.context.redact import Redactor
from mistral_magic.engine.inline import (
    CELL_SEPARATOR,
    CURSOR,
    InlineContext,
    InsertionCut,
    chat_question,
    fim_prompt,
    referenced_frames,
)

SALES = "sales: pandas DataFrame, 3 rows × 2 columns; columns: region (object), amount (int64)"
KEY = "sk-test-abcdefghijklmnop0123456789"


def budgets(prefix: int = 8000, suffix: int = 2000) -> dict:
    return {"prefix_chars": prefix, "suffix_chars": suffix, "redactor": Redactor([KEY])}


def test_prompt_is_earlier_cells_then_the_cell_up_to_the_cursor():
    ctx = InlineContext(
        prefix="total = sales[",
        suffix="]\nprint(total)",
        before=("import pandas as pd", "sales = load()"),
        after=("plot(total)",),
    )
    prompt, suffix = fim_prompt(ctx, **budgets())
    assert (
        prompt == f"import pandas as pd{CELL_SEPARATOR}sales = load(){CELL_SEPARATOR}total = sales["
    )
    assert suffix == f"]\nprint(total){CELL_SEPARATOR}plot(total)"


def test_the_frames_the_cell_names_lead_with_their_columns():
    ctx = InlineContext(
        prefix="x = sales[",
        names=("sales · DataFrame 3×2", "other · DataFrame 1×1", "pd · module pandas"),
        frames={"sales": SALES, "other": "other: pandas DataFrame, 1 row; columns: a (int64)"},
    )
    assert referenced_frames(ctx) == ["sales"]
    prompt, _ = fim_prompt(ctx, **budgets())
    header, code = prompt.split("\n\n", 1)
    assert header.splitlines() == [
        "# In the running kernel:",
        f"# {SALES}",
        "# names in scope: other · DataFrame 1×1, pd · module pandas",
    ]
    assert code == "x = sales["
    assert "amount (int64)" in chat_question(ctx, **budgets())


def test_secrets_are_redacted_before_anything_is_clipped():
    ctx = InlineContext(
        prefix=f"token = '{KEY}'\n" + "y = 1\n" * 3 + "z = ",
        before=(f"api = '{KEY}'",),
        names=(f"note · str {KEY}",),
        frames={},
    )
    prompt, suffix = fim_prompt(ctx, **budgets())
    assert KEY not in prompt + suffix
    # a budget that cuts through where the key was never shows a piece of it
    for limit in range(10, 60):
        clipped, _ = fim_prompt(ctx, **budgets(prefix=limit))
        assert KEY[:12] not in clipped and KEY[-12:] not in clipped


def test_the_nearest_code_is_kept_within_the_budgets():
    ctx = InlineContext(
        prefix="last_line = ",
        suffix=" # end\n" + "after = 1\n" * 500,
        before=tuple(f"cell_{i} = {i}" for i in range(2000)),
    )
    prompt, suffix = fim_prompt(ctx, **budgets(prefix=500, suffix=100))
    assert len(prompt) <= 500 and prompt.endswith(
        "cell_1999 = 1999" + CELL_SEPARATOR + "last_line = "
    )
    assert "cell_0 =" not in prompt
    assert len(suffix) <= 100 and suffix.startswith(" # end\nafter = 1")


def test_a_huge_notebook_costs_what_the_budget_does():
    """Redaction runs on what can be sent, not on every cell (per keystroke)."""
    calls: list[int] = []

    class Counting(Redactor):
        def redact(self, text: str) -> str:
            calls.append(len(text))
            return super().redact(text)

    ctx = InlineContext(prefix="x = ", before=tuple("y = 1\n" * 1000 for _ in range(500)))
    fim_prompt(ctx, prefix_chars=1000, suffix_chars=100, redactor=Counting([]))
    assert sum(calls) < 10_000


def feed_all(cut: InsertionCut, pieces: list[str]) -> tuple[str, list[str]]:
    given = [cut.feed(p) for p in pieces]
    given.append(cut.finish())
    return "".join(given), given


@pytest.mark.parametrize(
    "line_prefix, suffix_head, answer, insertion",
    [
        ("total = sales[", "", "'amount'].sum()", "'amount'].sum()"),
        ("total = sales[", "", "total = sales['amount'].sum()", "'amount'].sum()"),
        ("total = sales[", "", "sales['amount'].sum()", "'amount'].sum()"),
        ("x = ", "", "```python\nsales.head()\n```\nThis shows the head.", "sales.head()"),
        ("x = ", "", "~~~\nsales.head()\n~~~", "sales.head()"),
        ("print(", ")", "sales.shape)", "sales.shape"),
        ("y = ", "", f"len(sales){CURSOR}", "len(sales)"),
        ("    for row in ", ":", "rows:\n", "rows"),
        ("", "", "import numpy as np\n\n", "import numpy as np"),
    ],
)
def test_a_chat_answer_is_cut_to_the_insertion(line_prefix, suffix_head, answer, insertion):
    whole, _ = feed_all(InsertionCut(line_prefix, suffix_head), [answer])
    assert whole == insertion
    # the same, one character at a time: nothing given is ever taken back
    whole, _ = feed_all(InsertionCut(line_prefix, suffix_head), list(answer))
    assert whole == insertion


def test_plain_code_streams_on_while_a_fence_opener_waits_for_its_line():
    cut = InsertionCut("x = ", "")
    assert cut.feed("``") == ""
    assert cut.feed("`py") == ""
    assert cut.feed("thon\nsales") == "sales"
    assert cut.feed(".head()\n") == ".head()"  # the newline may start the closing fence
    assert cut.feed("```\nmore prose") == ""
    assert cut.finish() == ""
    assert cut.text == "sales.head()"


@given(
    st.sampled_from(["", "x = ", "total = sales[", "print(", "    for r in "]),
    st.sampled_from(["", ")", "]", ":"]),
    st.text(alphabet="ab`\n ()[]'<CURSOR>x=.", max_size=40),
    st.lists(st.integers(min_value=1, max_value=6), min_size=1, max_size=20),
)
def test_any_split_of_an_answer_gives_the_same_insertion(prefix, suffix, answer, sizes):
    """Streaming never gives text that the whole answer would not."""
    whole, _ = feed_all(InsertionCut(prefix, suffix), [answer])
    pieces, rest = [], answer
    for size in sizes:
        pieces.append(rest[:size])
        rest = rest[size:]
    pieces.append(rest)
    streamed, _ = feed_all(InsertionCut(prefix, suffix), pieces)
    assert streamed == whole
