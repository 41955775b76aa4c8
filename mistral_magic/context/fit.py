"""The one way text reaches the model: bound the work, clean, redact, then clip.

Every text that goes into context or a tool result (cell sources and outputs, tracebacks,
descriptions of values, table cells, notebook JSON, selections) passes through :func:`fit`:

1. **bound** — a text much longer than what will be kept is cut first, generously, keeping its
   head (and its tail when the tail is kept too), so the passes below cost O(kept size), not
   O(text size): a 52 MB error value costs what a 50 kB one does.
2. **clean** — ANSI colour codes and control characters go, undecodable bytes (lone
   surrogates) become ``\\udcNN`` escapes, inline data (``data:`` URIs, long base64 blobs) is
   named instead of shown (:func:`name_inline_data`).
3. **redact** — secrets become ``[REDACTED]`` (:class:`~mistral_magic.context.redact.Redactor`).
4. **clip** — to the final size, at the head or keeping head and tail.

Redacting before the final clip is what keeps a secret from being sent half: a key cut at the
final edge would no longer be recognised. The cut of step 1 has the same problem, so it is
marked, and after redaction the text next to it that could still hold part of a cut secret is
dropped (:data:`EDGE_CHARS` plus the room that replacements may have shifted it by).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mistral_magic.context.redact import Redactor

ELLIPSIS = "…"
CLIPPED = "\n[… clipped …]\n"

#: Text this close to a bound cut may hold part of a secret that was cut in two; it is
#: dropped after redaction. Longer than any credential the redactor knows as one token
#: (keys, tokens, JWTs of ordinary size); PEM blocks have patterns of their own for halves.
EDGE_CHARS = 256
#: How much one replacement can lengthen text ("[REDACTED]" plus a kept quote, for a value
#: of one character): text after it moves right by at most this much.
_GROWTH_PER_REPLACEMENT = 10

# A private-use character pair marks the bound cut until redaction is done: cleaning keeps
# it, no secret pattern matches across it (it contains newlines), and nothing else makes it.
_CUT = "\n\ue000cut\ue001\n"

ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")

# A data URI: data:[mime][;params],payload (the payload ends at whitespace, a quote, a
# bracket or a parenthesis: where it ends inside HTML attributes and Markdown links).
_DATA_URI = re.compile(
    r"data:(?P<mime>[A-Za-z0-9.+-]{1,40}/[A-Za-z0-9.+-]{1,80})?"
    r"(?:;[A-Za-z0-9.+-]{1,40}(?:=[A-Za-z0-9.+-]{0,80})?){0,8},"
    r"(?P<payload>[^\s\"'()<>\[\]]*)"
)
#: A run of base64 at least this long is a blob, not text (PEM lines are 64 characters).
BASE64_BLOB_CHARS = 100
# Anchored at the start of a run (the look-behind), so a long run is scanned once.
_BASE64_RUN = re.compile(rf"(?<![A-Za-z0-9+/])[A-Za-z0-9+/]{{{BASE64_BLOB_CHARS},}}={{0,2}}")


# --------------------------------------------------------------------------------------------
# Clipping (the last step; also used on text that holds no user data)


def clip(text: str, max_chars: int, marker: str = ELLIPSIS) -> str:
    """``text`` cut to at most ``max_chars`` characters, ending with ``marker`` if cut."""
    if len(text) <= max_chars:
        return text
    if max_chars <= len(marker):
        return text[:max_chars]
    return text[: max_chars - len(marker)] + marker


def clip_middle(text: str, max_chars: int) -> str:
    """``text`` cut to at most ``max_chars`` characters keeping a third at the head and the
    rest at the tail (where errors and final results are)."""
    if len(text) <= max_chars:
        return text
    head = max_chars // 3
    tail = max_chars - head - len(CLIPPED)
    if head <= 0 or tail <= 0:  # too small for two ends and the marker between them
        return clip(text, max_chars)
    return text[:head] + CLIPPED + text[-tail:]


# --------------------------------------------------------------------------------------------
# Cleaning


def strip_ansi(text: str) -> str:
    return ANSI.sub("", text)


def printable(text: str) -> str:
    """Lone surrogates (undecodable bytes of file names, ``surrogateescape`` text) written as
    ``\\udcff`` escapes, so the text encodes as UTF-8 in a request and in the tokenizer."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


def _size(characters: int) -> str:
    size = characters * 3 / 4  # base64 carries 3 bytes in 4 characters
    if size < 1000:
        return f"{size:.0f} bytes"
    if size < 1_000_000:
        return f"{size / 1000:.1f} kB"
    return f"{size / 1_000_000:.1f} MB"


def _name_data_uri(match: re.Match[str]) -> str:
    mime = (match.group("mime") or "data").lower()
    kind = "image" if mime.startswith("image/") else "data"
    return f"[inline {kind}: {mime}, {_size(len(match.group('payload')))}]"


def _name_base64_run(match: re.Match[str]) -> str:
    run = match.group(0)
    # Real base64 mixes cases and digits; a long run of one letter or a hex digest is text.
    if not (any(c.isdigit() for c in run) and any(c.isupper() for c in run)):
        return run
    if not any(c.islower() for c in run):
        return run
    return f"[base64 data: {_size(len(run))}]"


def name_inline_data(text: str) -> str:
    """``data:`` URIs and long base64 blobs replaced by a short name of what they hold
    (``[inline image: image/png, 3.1 kB]``): images in Markdown and HTML, encoded files."""
    if "data:" in text:
        text = _DATA_URI.sub(_name_data_uri, text)
    if len(text) >= BASE64_BLOB_CHARS:
        text = _BASE64_RUN.sub(_name_base64_run, text)
    return text


def clean_text(text: str) -> str:
    """Text safe to send and show: no ANSI codes or control characters, ``\\r`` as line
    breaks, valid UTF-8 (undecodable bytes as ``\\udcNN`` escapes), inline data named."""
    text = ANSI.sub("", text) if "\x1b" in text else text
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)
    return name_inline_data(printable(text))


def one_line(text: str) -> str:
    """:func:`clean_text`, on one line (line breaks as ``\\n``): a table cell."""
    text = clean_text(text)
    return text.replace("\n", "\\n").replace("\t", " ")


# --------------------------------------------------------------------------------------------
# Bound -> clean -> redact -> clip


def bound(text: str, head: int, tail: int = 0) -> str:
    """``text`` if it has at most ``head + tail`` characters; otherwise its first ``head``
    and last ``tail`` characters around a cut mark (removed again by :func:`redact_bounded`).
    """
    if len(text) <= head + tail:
        return text
    return text[:head] + _CUT + (text[-tail:] if tail else "")


def bound_join(parts: Sequence[str], head: int, tail: int = 0, sep: str = "") -> str:
    """``sep.join(parts)`` bounded like :func:`bound`, touching only the parts it keeps (a
    traceback of 10,000 lines, a stream of 50 MB in one-line chunks)."""
    total = sum(map(len, parts)) + len(sep) * max(len(parts) - 1, 0)
    if total <= head + tail:
        return sep.join(parts)
    first: list[str] = []
    size = 0
    for part in parts:
        first.append(part)
        size += len(part) + len(sep)
        if size >= head:
            break
    last: list[str] = []
    size = 0
    if tail:
        for part in reversed(parts):
            last.append(part)
            size += len(part) + len(sep)
            if size >= tail:
                break
        last.reverse()
    head_text = sep.join(first)[:head]
    tail_text = sep.join(last)[-tail:] if tail else ""
    return head_text + _CUT + tail_text


def _drop_near_cuts(text: str, width: int) -> str:
    """Remove ``width`` characters on each side of every cut mark, then show the marks."""
    pieces = text.split(_CUT)
    last = len(pieces) - 1
    kept = []
    for index, piece in enumerate(pieces):
        start = width if index > 0 else 0
        end = len(piece) - width if index < last else len(piece)
        kept.append(piece[start:end] if end > start else "")
    return CLIPPED.join(kept)


def redact_bounded(
    text: str,
    redactor: Redactor | None,
    *,
    head: int,
    tail: int = 0,
    clean: Callable[[str], str] | None = clean_text,
) -> str:
    """Steps 1 to 3 of :func:`fit` (bound, clean, redact), without the final clip: at least
    ``head`` (and ``tail``) characters survive when the text is longer than that."""
    margin = 2 * EDGE_CHARS
    bounded = bound(text, head + margin, tail + margin if tail else 0)
    replacements = 0
    cleaned = clean(bounded) if clean is not None else bounded
    if redactor is not None and cleaned != bounded:
        # Secrets as they are first: cleaning can break one ("\x1b[" before a key that starts
        # with "m" reads as a colour code and takes its first letter) ...
        bounded, replacements = redactor.redact_counting(bounded)
        cleaned = clean(bounded) if clean is not None else bounded
    if redactor is not None:
        # ... and as cleaned, where what colour codes or \r split is joined again.
        cleaned, more = redactor.redact_counting(cleaned)
        replacements += more
    bounded = cleaned
    if _CUT in bounded:
        bounded = _drop_near_cuts(bounded, EDGE_CHARS + _GROWTH_PER_REPLACEMENT * replacements)
    return bounded


def fit(
    text: str,
    max_chars: int,
    redactor: Redactor | None,
    *,
    middle: bool = False,
    clean: Callable[[str], str] | None = clean_text,
    marker: str = ELLIPSIS,
) -> str:
    """``text`` bounded, cleaned, redacted, then clipped to ``max_chars`` characters (at
    the head, or keeping head and tail with ``middle``). ``redactor`` None only for text
    that is redacted as a whole later (never for text that is sent as it is)."""
    if middle:
        head = max_chars // 3
        kept = redact_bounded(
            text, redactor, head=2 * head, tail=2 * (max_chars - head), clean=clean
        )
        return clip_middle(kept, max_chars)
    kept = redact_bounded(text, redactor, head=2 * max_chars, clean=clean)
    return clip(kept, max_chars, marker)
