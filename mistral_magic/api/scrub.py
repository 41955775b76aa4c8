"""The one way server text gets into an error message: secrets out first, then clipped.

Everything a server sends is untrusted: an error body, a stream event, an HTML page behind
the wrong headers, even a transport error's text may echo the ``Authorization`` header or a
URL with credentials. :meth:`Scrubber.quote` is the only function the client uses to put such
text in a message, so no path can forget to remove the key.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

REDACTED = "[REDACTED]"
# Credentials, whatever key they carry (a gateway's, not only ours): header values
# ("Bearer …", "Basic …") and assignments ("api_key=…", "token: …"). A value must look like
# a credential (a digit in it, or 20 characters and more), so that "basic validation" or
# "missing bearer token" stay readable.
_CREDENTIALS = re.compile(
    r"(?i)\b(bearer\s+|basic\s+|(?:api[_-]?key|access[_-]?token|token)\s*[=:]\s*[\"']?)"
    r"(?=[A-Za-z._~+/=-]*[0-9]|[A-Za-z0-9._~+/=-]{20})[A-Za-z0-9._~+/=-]{6,}"
)
# user:password@ inside any URL
_URL_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/\s@\"']+@")
_HTML = re.compile(r"(?is)^\s*(<!doctype\s+html|<html|<head|<body|<\?xml)")
_TITLE = re.compile(r"(?is)<title[^>]*>(.*?)</title>")
_SPACES = re.compile(r"[\s\x00-\x1f\x7f]+")
# Enough text around the quoted part that a secret cut at the edge is never what remains.
_MARGIN = 4096


@dataclass(frozen=True)
class Scrubber:
    """Removes ``secrets`` (the API key, URL credentials) and credential-looking tokens."""

    secrets: tuple[str, ...] = ()

    @classmethod
    def for_client(cls, api_key: str | None, base_url: str | None) -> Scrubber:
        found: list[str] = []
        if api_key and len(api_key) >= 4:
            found.append(api_key)
        found.extend(url_secrets(base_url or ""))
        # longest first, so a secret that contains another is removed whole
        return cls(tuple(sorted(set(found), key=len, reverse=True)))

    def scrub(self, text: str) -> str:
        for secret in self.secrets:
            if secret in text:
                text = text.replace(secret, REDACTED)
        text = _URL_USERINFO.sub(rf"\1{REDACTED}@", text)
        return _CREDENTIALS.sub(rf"\1{REDACTED}", text)

    def quote(self, raw: str | bytes | None, limit: int = 300) -> str:
        """``raw`` fit for a one-paragraph message: secrets removed *before* clipping (so a
        clipped key cannot slip through), an HTML page named by its title, whitespace and
        control characters folded, at most ``limit`` characters."""
        if raw is None:
            return ""
        if isinstance(raw, bytes):
            raw = raw[: 4 * (limit + _MARGIN)].decode("utf-8", "replace")
        text = self.scrub(raw[: limit + _MARGIN])
        if _HTML.match(text):
            title = _TITLE.search(text)
            heading = _SPACES.sub(" ", title.group(1)).strip() if title else ""
            text = f"an HTML page ({heading})" if heading else "an HTML page"
        text = _SPACES.sub(" ", text).strip()
        return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def url_secrets(url: str) -> list[str]:
    """The credentials inside ``url`` (``user:password@``): raw, percent-decoded, and as the
    Basic auth value that carries them."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return []
    userinfo = parts.netloc.rpartition("@")[0] if "@" in parts.netloc else ""
    if not userinfo:
        return []
    plain = unquote(userinfo)
    # ... and as the Basic auth header that carries them
    found = {userinfo, plain, base64.b64encode(plain.encode()).decode()}
    user, _, password = userinfo.partition(":")
    for piece in (password, unquote(password)):
        if len(piece) >= 4:
            found.add(piece)
    if len(user) >= 4:
        found.add(user)
    return [s for s in found if s]
