"""A live shell's cell history: sources as typed, text outputs, which cells ran.

Shared by the collector (:mod:`kernel`), error context (:mod:`errors`) and the notebook tools.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from mistral_magic.context.describe import bounded_repr, clip
from mistral_magic.context.redact import Redactor

CELL_SOURCE_CHARS = 4000

ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)")
INPUT_FILENAME = re.compile(r"<ipython-input-(\d+)-[0-9a-f]+>")
_MISTRAL_MAGIC = re.compile(
    r"^\s*(?:%%?mistral\b|get_ipython\(\)\.run_(?:cell|line)_magic\(\s*['\"]mistral['\"])"
)


def raw_inputs(shell: Any) -> list[str]:
    """Cell sources indexed by execution count (index 0 is empty), as typed."""
    history = getattr(shell, "history_manager", None)
    raw = getattr(history, "input_hist_raw", None)
    if isinstance(raw, list) and len(raw) > 1:
        return raw
    parsed = shell.user_ns.get("In")
    return parsed if isinstance(parsed, list) else [""]


def running_count(shell: Any) -> int | None:
    """Execution count of the cell running right now (e.g. the %%mistral cell), if any."""
    result = getattr(getattr(shell, "displayhook", None), "exec_result", None)
    count = getattr(result, "execution_count", None)
    return count if isinstance(count, int) else None


def is_mistral_invocation(source: str) -> bool:
    return bool(_MISTRAL_MAGIC.match(source or ""))


def executed_counts(shell: Any, inputs: list[str], limit: int | None = None) -> list[int]:
    """The last ``limit`` (default: all) finished cells, oldest first, without %mistral
    invocations. (Also used by :mod:`mistral_magic.tools.notebook`.)"""
    running = running_count(shell)
    found: list[int] = []
    for n in range(len(inputs) - 1, 0, -1):
        if limit is not None and len(found) >= limit:
            break
        if n != running and inputs[n].strip() and not is_mistral_invocation(inputs[n]):
            found.append(n)
    found.reverse()
    return found


def history_outputs(shell: Any, count: int) -> Iterator[tuple[str, str]]:
    """(kind, text) for a cell's outputs: stdout, stderr, result, display, error."""
    history = getattr(shell, "history_manager", None)
    outputs = getattr(history, "outputs", None)
    recorded = outputs.get(count) if isinstance(outputs, dict) else None
    if recorded:
        for output in recorded:
            bundle = getattr(output, "bundle", {}) or {}
            kind = getattr(output, "output_type", "")
            if kind in ("out_stream", "err_stream"):
                text = "".join(map(str, bundle.get("stream", [])))
                yield ("stdout" if kind == "out_stream" else "stderr"), text
            elif "text/plain" in bundle:
                text = bundle["text/plain"]
                text = "".join(text) if isinstance(text, list) else str(text)
                yield ("result" if kind == "execute_result" else "display"), text
    else:
        reprs = getattr(history, "output_hist_reprs", None)
        if isinstance(reprs, dict) and count in reprs:
            yield "result", str(reprs[count])
        else:
            out = shell.user_ns.get("Out")
            if isinstance(out, dict) and count in out:
                yield "result", bounded_repr(out[count], 4000)
    exceptions = getattr(history, "exceptions", None)
    if isinstance(exceptions, dict) and count in exceptions:
        record = exceptions[count]
        yield "error", f"{record.get('ename', 'Error')}: {record.get('evalue', '')}"


def clip_middle(text: str, max_chars: int) -> str:
    if len(text) <= max_chars:
        return text
    marker = "\n[… clipped …]\n"
    head = max_chars // 3
    tail = max_chars - head - len(marker)
    return text[:head] + marker + text[-tail:]


def cell_text(shell: Any, count: int, source: str, redactor: Redactor, output_chars: int) -> str:
    source = redact_clipped(redactor, source, CELL_SOURCE_CHARS)
    parts = [f"```python\n{source.rstrip()}\n```"]
    for kind, text in history_outputs(shell, count):
        text = INPUT_FILENAME.sub(r"In[\1]", ANSI.sub("", text)).rstrip()
        if not text:
            continue
        text = redact_clipped(redactor, text, output_chars, middle=True)
        if kind == "result":
            parts.append(f"Out[{count}]:\n{text}")
        else:
            parts.append(f"{kind}:\n{text}")
    return "\n".join(parts)


def redact_clipped(redactor: Redactor, text: str, max_chars: int, middle: bool = False) -> str:
    """Redact, then clip. Pre-clips very long text first so redaction stays cheap; the final
    clip is much shorter than the pre-clip, so no secret is cut in half at an edge."""
    if len(text) > 4 * max_chars:
        text = clip_middle(text, 4 * max_chars)
    text = redactor.redact(text)
    return clip_middle(text, max_chars) if middle else clip(text, max_chars)


def printable(text: str) -> str:
    """Lone surrogates (undecodable bytes of file names, ``surrogateescape`` text) written as
    ``\\udcff`` escapes, so the text encodes as UTF-8 in a request."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")
