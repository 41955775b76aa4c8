"""Base URLs: what is wrong with one (a reason a person can act on), shown without
credentials. Pure string work; :mod:`checks` turns a problem into a SettingsError."""

from __future__ import annotations

from urllib.parse import SplitResult, urlsplit

EXAMPLES = "e.g. https://api.mistral.ai/v1 or http://localhost:8000/v1"


def base_url_problem(url: str) -> str | None:
    """Why ``url`` cannot be an API root, or None when it can. Never quotes credentials."""
    shown = display_url(url)
    if not url or url != url.strip() or any(c.isspace() for c in url):
        return f"the base URL {shown!r} is empty or contains spaces ({EXAMPLES})"
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:  # a port that is not a number, or out of range
        reason = "its port is not a number from 1 to 65535"
        if "port" not in str(exc).lower():
            reason = "it is not a valid URL"
        return f"the base URL {shown!r} is not usable: {reason} ({EXAMPLES})"
    if parts.scheme not in ("http", "https"):
        return f"the base URL {shown!r} must start with http:// or https:// ({EXAMPLES})"
    if not parts.hostname:
        return f"the base URL {shown!r} has no host name ({EXAMPLES})"
    if port == 0:
        return f"the base URL {shown!r} has port 0 ({EXAMPLES})"
    if parts.query or parts.fragment:
        return f"the base URL {shown!r} must not have a ?query or #fragment ({EXAMPLES})"
    return None


def display_url(url: str) -> str:
    """``url`` as it may be shown: any ``user:password@`` replaced by ``[credentials]@``."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return url.split("@", 1)[-1] if "@" in url else url
    if "@" not in parts.netloc:
        return url
    host = parts.netloc.rpartition("@")[2]
    return SplitResult(
        parts.scheme, f"[credentials]@{host}", parts.path, parts.query, parts.fragment
    ).geturl()
