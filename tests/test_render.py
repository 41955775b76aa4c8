"""Code extraction from replies; the streaming display (throttled, block by block); Markdown
made safe to render as trusted; Markdown as plain text for terminals."""

from __future__ import annotations

import io

import pytest

from mistral_magic.faces.markdown_plain import to_plain
from mistral_magic.faces.markdown_safe import neutralize
from mistral_magic.faces.markdown_stream import HARD_BLOCK_CHARS, MarkdownBlocks
from mistral_magic.faces.render import (
    CURSOR,
    CodeBlock,
    StreamingDisplay,
    extract_code_blocks,
    python_cell,
)

REPLY = """Here you go:

```python
import matplotlib.pyplot as plt
sales.groupby("region")["revenue"].sum().plot.bar()
```

And in the shell:

```bash
pip install matplotlib
```

~~~py
print("tilde fence")
~~~
"""


def test_blocks_with_languages_are_found_in_order():
    blocks = extract_code_blocks(REPLY)
    assert [b.language for b in blocks] == ["python", "bash", "py"]
    assert blocks[0].code.splitlines()[1].startswith("sales.groupby")
    assert blocks[2].code == 'print("tilde fence")'


def test_only_python_goes_into_the_cell_each_block_labelled():
    cell = python_cell(extract_code_blocks(REPLY))
    assert "pip install" not in cell
    assert "# --- block 1 of 2 from Mistral's reply ---" in cell
    assert "# --- block 2 of 2 from Mistral's reply ---" in cell
    assert cell.index("plot.bar()") < cell.index("tilde fence")


def test_single_block_is_inserted_as_is():
    assert python_cell([CodeBlock("python", "x = 1\n")]) == "x = 1"


def test_no_python_no_cell():
    assert python_cell(extract_code_blocks("```sql\nselect 1\n```\nplain ``x``")) is None
    assert python_cell([]) is None


def test_unclosed_block_of_a_cut_reply_is_not_offered():
    assert extract_code_blocks("text\n```python\nimport os\nos.remove(") == []


def test_longer_fences_and_nested_backticks():
    text = "````markdown\n```python\nx = 1\n```\n````\n```python\ny = 2\n```"
    blocks = extract_code_blocks(text)
    assert [(b.language, b.code) for b in blocks] == [
        ("markdown", "```python\nx = 1\n```"),
        ("python", "y = 2"),
    ]


def test_terminal_display_prints_only_new_text():
    out = io.StringIO()
    display = StreamingDisplay(notebook=False, out=out)
    display.update("Hel")
    display.update("Hello")
    display.finish("Hello!", "model · 3 tokens")
    assert out.getvalue() == "Hello!\n\nmodel · 3 tokens\n"


def test_notebook_display_is_throttled(monkeypatch):
    shown: list[str] = []
    display = StreamingDisplay(notebook=True, max_fps=15)
    monkeypatch.setattr(display, "_show", lambda md, *_: shown.append(md))
    text = ""
    for i in range(500):  # a 500-token reply at full speed: one block
        text += f"t{i} "
        display.update(text)
    display.finish(text, "footer")
    assert len(shown) <= 3  # the loop takes far less than a second
    assert shown[-1].startswith(text.rstrip()) and shown[-1].endswith("*footer*")


def test_a_long_reply_is_sent_block_by_block_each_once(monkeypatch):
    """Every output holds one block: what was finished is not sent again."""
    shown: list[str] = []
    display = StreamingDisplay(notebook=True, max_fps=1e9)  # no throttle: the worst case
    monkeypatch.setattr(display, "_show", lambda md, *_: shown.append(md))
    paragraphs = [f"Paragraph {i}: " + "word " * 60 for i in range(200)]  # ~64 kB
    text = ""
    for paragraph in paragraphs:
        for word in paragraph.split(" "):
            text += word + " "
            display.update(text)
        text += "\n\n"
        display.update(text)
    display.finish(text)
    assert max(len(md) for md in shown) <= HARD_BLOCK_CHARS + 100
    assert sum(len(md) for md in shown) < 2 * HARD_BLOCK_CHARS * len(shown)
    finals = [md for md in shown if not md.endswith(CURSOR)]
    assert "\n\n".join(finals).split() == text.split()  # the blocks make up the reply


def test_blocks_cut_at_paragraphs_and_reopen_a_long_code_block():
    blocks = MarkdownBlocks(soft=50, hard=200)
    finished = blocks.feed("Intro paragraph that is long enough to end a block.\n\nNext")
    assert finished == ["Intro paragraph that is long enough to end a block."]
    code = "".join(f"line {i}\n" for i in range(60))
    finished = blocks.feed("\n```python\n" + code + "```\nafter")
    assert all(b.count("```") % 2 == 0 for b in finished)  # each block closes its fence
    assert finished[1].startswith("```python\n")  # the block goes on in the next output
    assert blocks.close() == "after"
    joined = "\n".join(finished)
    assert all(f"line {i}\n" in joined for i in range(60))


def test_a_line_without_end_is_cut_at_spaces_in_linear_time():
    blocks = MarkdownBlocks(soft=100, hard=1000)
    finished = []
    for _ in range(200_000):  # 1 MB in 5-character pieces, never a newline
        finished += blocks.feed("abcd ")
    assert all(len(b) <= 1000 for b in finished) and len(finished) >= 900
    assert "".join(finished) + blocks.close() == "abcd " * 200_000


def test_json_streams_inside_a_code_block(monkeypatch):
    shown: list[str] = []
    display = StreamingDisplay(notebook=True, code_language="json")
    monkeypatch.setattr(display, "_show", lambda md, *_: shown.append(md))
    display.update('{"a": ')
    display.finish('{"a": 1}', "footer")
    assert shown[0] == '```json\n{"a":' + " " + CURSOR
    assert shown[-1].startswith('```json\n{"a": 1}\n```') and "*footer*" in shown[-1]


def test_terminal_json_is_printed_once_without_a_fence():
    out = io.StringIO()
    display = StreamingDisplay(notebook=False, out=out, code_language="json")
    display.update('{"a"')
    display.update('{"a": 1}')
    display.finish('{"a": 1}', "model")
    assert out.getvalue() == '{"a": 1}\n\nmodel\n'


# ------------------------------------------------------------------ raw HTML never goes live

HOSTILE = (
    "Here is the chart <img src=x onerror=\"fetch('/api/contents/PWNED.txt',{method:'PUT'})\">"
    " and <script>alert(1)</script>\n\n"
    "| col | html |\n|---|---|\n| **1** | <b onmouseover=alert(1)>x</b> |\n\n"
    "```python\nif a < b and '<img>' in s:\n    print('</script>')\n```\n"
)


def test_raw_html_in_prose_and_tables_is_escaped_and_code_stays_exact():
    safe = neutralize(HOSTILE)
    prose = safe.split("```python")[0]
    assert "<img" not in prose and "<script" not in prose and "<b " not in prose
    assert "&lt;img src=x onerror=" in safe and "&lt;script>alert(1)&lt;/script>" in safe
    assert "| **1** |" in safe  # Markdown formatting and the table stay
    assert "```python\nif a < b and '<img>' in s:\n    print('</script>')\n```" in safe
    assert extract_code_blocks(safe) == extract_code_blocks(HOSTILE)


@pytest.mark.parametrize(
    "markdown",
    [
        "- item\n  ```\n<img src=x onerror=alert(1)>\n  ```",  # a fence the list does not hold
        "text\u2028```\n<img src=x onerror=alert(1)>\n```",  # U+2028 does not end a line
        "````\n<img src=x onerror=alert(1)>\n```\n",  # a short fence does not close a long one
        "\\`<img src=x onerror=alert(1)>`",  # an escaped backtick opens no code span
        "| `a|<img src=x onerror=alert(1)>` |\n|---|",  # a pipe splits the cell first
        "text\n    ```\n    <img src=x onerror=alert(1)>\n    ```",  # indented: paragraph text
        "<!-- comment --><details open ontoggle=alert(1)>",
    ],
)
def test_markup_stays_text_whichever_way_a_renderer_reads_the_structure(markdown):
    """Each case is read differently by some Markdown renderers; none may yield a tag."""
    import mistune

    for render in (
        mistune.create_markdown(escape=False, plugins=["table"]),
        mistune.create_markdown(escape=False),
    ):
        html = render(neutralize(markdown))
        assert "<img" not in html and "<details" not in html, html


def test_scripts_in_links_and_remote_images_are_defused():
    safe = neutralize("[x](javascript:alert(1)) [y](JavaScript\\:alert(1)) ![i](http://e/a.png)")
    assert "javascript:" not in safe.lower() and "javascript\\:" not in safe.lower()
    assert "\\![i](http://e/a.png)" in safe  # a link to click, not an image to fetch
    assert "&amp;#106;avascript:" in neutralize("[x](&#106;avascript:alert(1))")


def test_math_and_comparisons_are_left_as_written():
    text = "If $x < 5$ and a <= b, then 3 <4 & so on: `a & b`."
    assert neutralize(text) == text


def test_neutralize_is_linear_on_hostile_backticks():
    text = "`" + " ``" * 50_000 + " <x>"  # many runs that close nothing
    assert "&lt;x>" in neutralize(text)


def test_terminal_markdown_is_plain_text_with_aligned_columns():
    plain = to_plain(
        "**Settings** in `effect`:\n\n| setting | value |\n|---|---:|\n"
        "| model | `mistral-large-2407` |\n| context_budget | `6000` |"
    )
    assert plain.splitlines() == [
        "Settings in effect:",
        "",
        "setting                      value",
        "--------------  ------------------",
        "model           mistral-large-2407",
        "context_budget                6000",
    ]
