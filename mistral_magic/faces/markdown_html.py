"""Markdown to HTML for the widgets (chat panel, error help).

ipywidgets' ``HTML`` shows HTML, not Markdown, so replies are rendered here: mistune (the
Markdown library nbconvert and Jupyter already ship; raw HTML in a reply is escaped,
``javascript:`` links are dropped and images become links, so a reply cannot make the
browser fetch anything without a click) with code highlighted by pygments. Styles are inline or
scoped to ``.mm-md``, so a reply looks the same in JupyterLab, Notebook 7 and VS Code.
Without mistune a reply is shown as escaped preformatted text.
"""

from __future__ import annotations

import html
from collections.abc import Callable
from functools import lru_cache
from typing import Any

#: One <style> element per widget tree; every rendered reply is wrapped in ``.mm-md``.
STYLE = """<style>
.mm-md{line-height:1.45;overflow-wrap:anywhere}
.mm-md p{margin:.35em 0}
.mm-md table{border-collapse:collapse;margin:.4em 0}
.mm-md th,.mm-md td{border:1px solid rgba(128,128,128,.45);padding:2px 8px}
.mm-md code{font-family:var(--jp-code-font-family,monospace);font-size:.92em}
.mm-md p code,.mm-md li code{background:rgba(128,128,128,.15);padding:0 .25em;border-radius:3px}
.mm-code{margin:.4em 0;border:1px solid rgba(128,128,128,.35);border-radius:4px}
.mm-code-bar{display:flex;justify-content:space-between;align-items:center;font-size:11px;
 padding:1px 6px;background:rgba(128,128,128,.12)}
.mm-code pre{margin:0;padding:6px 8px;overflow-x:auto;background:#f6f8fa;color:#24292f}
.mm-copy{font-size:11px;cursor:pointer;border:1px solid rgba(128,128,128,.5);border-radius:3px;
 background:transparent;color:inherit;padding:0 6px}
.mm-user{background:rgba(66,133,244,.09);border-radius:6px;padding:4px 8px;margin:6px 0 2px;
 white-space:pre-wrap}
.mm-note{font-size:11px;opacity:.75}
.mm-input .mm-box{width:100%;box-sizing:border-box;font:inherit;resize:vertical;padding:4px 6px}
.mm-thinking{margin:.3em 0;opacity:.8}
.mm-thinking summary{font-size:11px;cursor:pointer}
.mm-problem{color:#b3261e}
</style>"""


def highlight(code: str, language: str) -> str:
    """``code`` as HTML spans with inline colours (escaped text if pygments can't)."""
    try:
        from pygments import highlight as pygments_highlight
        from pygments.formatters import HtmlFormatter
        from pygments.lexers import get_lexer_by_name
        from pygments.util import ClassNotFound
    except ImportError:
        return html.escape(code)
    try:
        lexer = get_lexer_by_name(language or "text", stripnl=False, ensurenl=False)
    except ClassNotFound:
        lexer = get_lexer_by_name("text", stripnl=False, ensurenl=False)
    formatter = HtmlFormatter(noclasses=True, nowrap=True, style="default")
    return pygments_highlight(code, lexer, formatter)


def code_block_html(code: str, language: str = "", *, copy_button: bool = True) -> str:
    """A highlighted code block with a small bar: its language and a Copy button."""
    bar = f"<span>{html.escape(language or 'code')}</span>"
    source = ""
    if copy_button:
        # the click is handled by frontend.js (a Behaviour widget beside the reply)
        bar += '<button class="mm-copy" title="Copy">Copy</button>'
        source = f"<textarea hidden readonly>{html.escape(code)}</textarea>"
    return (
        f'<div class="mm-code"><div class="mm-code-bar">{bar}</div>{source}'
        f"<pre>{highlight(code, language)}</pre></div>"
    )


@lru_cache(maxsize=2)
def _markdown_renderer(copy_buttons: bool) -> Callable[[str], str] | None:
    try:
        import mistune
        from mistune.renderers.html import HTMLRenderer
    except ImportError:
        return None

    class Renderer(HTMLRenderer):
        def block_code(self, code: str, info: str | None = None) -> str:
            language = (info or "").split()[0].lower() if (info or "").strip() else ""
            return code_block_html(code.rstrip("\n"), language, copy_button=copy_buttons)

        def image(self, text: str, url: str, title: str | None = None) -> str:
            return self.link(text or html.escape(url), url, title)

    markdown: Any = mistune.create_markdown(
        escape=True, renderer=Renderer(escape=True), plugins=["table", "strikethrough"]
    )
    return markdown


def markdown_to_html(text: str, *, copy_buttons: bool = True) -> str:
    """A Markdown reply as HTML inside ``<div class="mm-md">``."""
    render = _markdown_renderer(copy_buttons)
    if render is None:
        body = f'<pre style="white-space:pre-wrap">{html.escape(text)}</pre>'
    else:
        body = render(text)
    return f'<div class="mm-md">{body}</div>'
