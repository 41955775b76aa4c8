"""Markdown as plain text for terminal IPython: tables as aligned columns, no ``**`` or
backticks, code blocks indented. Parsed by mistune (a dependency already) into its syntax
tree, which is then written out as text."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

Node = dict[str, Any]
CODE_INDENT = "    "


@lru_cache(maxsize=1)
def _parser() -> Any:
    import mistune

    return mistune.create_markdown(renderer=None, plugins=["table", "strikethrough"])


def to_plain(markdown: str) -> str:
    """``markdown`` as text to print in a terminal."""
    nodes = _parser()(markdown)
    return "\n\n".join(part for part in (_block(n) for n in nodes) if part).rstrip()


def _block(node: Node) -> str:
    kind = node["type"]
    if kind in ("paragraph", "block_text"):
        return _inline(node.get("children", []))
    if kind == "heading":
        return _inline(node.get("children", [])).upper()
    if kind == "block_code":
        code = node.get("raw", "").rstrip("\n")
        return "\n".join(CODE_INDENT + line if line else "" for line in code.split("\n"))
    if kind == "list":
        return _list(node)
    if kind == "block_quote":
        inner = "\n\n".join(_block(n) for n in node.get("children", []))
        return "\n".join("> " + line for line in inner.split("\n"))
    if kind == "table":
        return _table(node)
    if kind == "thematic_break":
        return "-" * 40
    if kind == "blank_line":
        return ""
    if "children" in node:
        return "\n\n".join(_block(n) for n in node["children"])
    return str(node.get("raw", ""))


def _inline(nodes: list[Node]) -> str:
    parts = []
    for node in nodes:
        kind = node["type"]
        if kind in ("text", "codespan", "inline_html", "block_html"):
            parts.append(node.get("raw", ""))
        elif kind in ("softbreak", "linebreak"):
            parts.append("\n")
        elif kind == "link":
            label = _inline(node.get("children", []))
            url = node.get("attrs", {}).get("url", "")
            parts.append(label if not url or url == label else f"{label} ({url})")
        elif kind == "image":
            parts.append(_inline(node.get("children", [])))
        else:
            parts.append(_inline(node.get("children", [])) or str(node.get("raw", "")))
    return "".join(parts)


def _list(node: Node) -> str:
    ordered = node.get("attrs", {}).get("ordered", False)
    start = node.get("attrs", {}).get("start", 1) or 1
    items = []
    for number, item in enumerate(node.get("children", []), start):
        marker = f"{number}. " if ordered else "- "
        body = "\n".join(_block(n) for n in item.get("children", []) if n["type"] != "blank_line")
        lines = body.split("\n")
        items.append(
            "\n".join([marker + lines[0], *(" " * len(marker) + line for line in lines[1:])])
        )
    return "\n".join(items)


def _table(node: Node) -> str:
    rows: list[list[str]] = []
    aligns: list[str | None] = []
    for part in node.get("children", []):
        if part["type"] == "table_head":
            rows.append([_cell(c) for c in part.get("children", [])])
            aligns = [c.get("attrs", {}).get("align") for c in part.get("children", [])]
        else:
            rows += [[_cell(c) for c in row.get("children", [])] for row in part["children"]]
    columns = max((len(r) for r in rows), default=0)
    widths = [max((len(r[i]) for r in rows if i < len(r)), default=0) for i in range(columns)]

    def line(cells: list[str]) -> str:
        padded = []
        for i, width in enumerate(widths):
            text = cells[i] if i < len(cells) else ""
            right = i < len(aligns) and aligns[i] == "right"
            padded.append(text.rjust(width) if right else text.ljust(width))
        return "  ".join(padded).rstrip()

    out = [line(rows[0]), "  ".join("-" * w for w in widths)] if rows else []
    out += [line(r) for r in rows[1:]]
    return "\n".join(out)


def _cell(node: Node) -> str:
    return _inline(node.get("children", [])).replace("\n", " ")
