"""Code extraction from replies and the streaming display's throttling."""

from __future__ import annotations

import io

from mistral_magic.faces.render import CodeBlock, StreamingDisplay, extract_code_blocks, python_cell

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
    monkeypatch.setattr(display, "_show", lambda md: shown.append(md))
    text = ""
    for i in range(5000):  # a 5,000-token reply at full speed
        text += f"t{i} "
        display.update(text)
    display.finish(text, "footer")
    assert len(shown) <= 3  # the loop takes far less than a second
    assert shown[-1].startswith(text) and shown[-1].endswith("*footer*")
