"""Secret detection and redaction.

Two tools:

* :func:`is_secret_name` decides from a *variable name* alone whether its value must never be
  shown to the model. The kernel collector skips such variables entirely.
* :class:`Redactor` rewrites *text* (cell sources, outputs, descriptions, tracebacks) so that
  known secret values and common credential formats become ``[REDACTED]``.

Secret-name rules
-----------------
The name is split into lower-case word parts at ``_``, ``-``, ``.``, digits and camelCase
boundaries (``OPENAI_API_KEY`` -> openai/api/key, ``dbPassword`` -> db/password,
``HTTPAuthToken`` -> http/auth/token). Then, in order:

1. *Unambiguous words* anywhere make it secret: secret(s), password(s), passwd, pwd, passphrase,
   credential(s), cred(s), apikey(s), auth, oauth, authorization, bearer, privkey, privatekey,
   cookie(s), jwt. ``author``, ``secretary``, ``compass`` do not match: whole parts only.
2. *Glued compounds* in the name with separators removed make it secret even without
   word breaks: apikey, password, passwd, secretkey, privatekey, accesskey, accesstoken,
   authtoken, refreshtoken, clientsecret (``OPENAIAPIKEY``, ``mypassword``).
3. ``key`` / ``token`` (singular) are secret (``key``, ``mistral_key``, ``token``,
   ``hf_token``) unless another part says the name is about data, not credentials:
   ``sort_key``, ``primary_key``, ``key_column``, ``token_count``, ``max_token``,
   ``token_id`` / ``token_ids`` (but ``id_token`` is an OpenID credential), a tokenizer's
   special tokens (``pad_token``, ``bos_token``, ``mask_token``), ``path_token``, and
   exception names (``KeyError``, ``TokenError``). A credential qualifier (api, access,
   secret, private, ssh, aws, openai, mistral, github, hf, refresh, session, …) always wins
   over such a data word (``api_key_column`` is secret).
4. The plurals ``keys`` / ``tokens`` are secret only next to a credential qualifier
   (``api_keys``, ``ssh_keys``, ``access_tokens``); plain ``keys``, ``keys_df``,
   ``tokens``, ``max_tokens`` are ordinary data.
5. ``pass`` as the last part after an account word is secret (``db_pass``, ``smtp_pass``);
   ``pass_rate``, ``bypass``, ``passes`` are not.

Anything else (``monkey``, ``keyword``, ``tokenizer``, ``donkey``, ``passenger``) is not secret.
False positives only hide a variable from the model; false negatives are still caught by
the value patterns of :class:`Redactor`.

A name that is secret only by rule 3 or 4 without a qualifier (``key``, ``token``,
``my_token``) is *ambiguous*: ``key="video"`` and ``token = "[CLS]"`` are everyday data. For
those, a value is redacted only if it looks like a credential (:func:`looks_like_credential`:
letters mixed with digits, or long and random-looking); for every other secret name any value
is.
"""

from __future__ import annotations

import functools
import itertools
import os
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

REDACTED = "[REDACTED]"

#: Literal secrets shorter than this are ignored: replacing them would mangle ordinary text.
MIN_SECRET_LENGTH = 8

_NAME_PART = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+")

_ALWAYS_SECRET_PARTS = frozenset(
    {
        "secret",
        "secrets",
        "password",
        "passwords",
        "passwd",
        "pwd",
        "passphrase",
        "credential",
        "credentials",
        "cred",
        "creds",
        "apikey",
        "apikeys",
        "auth",
        "oauth",
        "authorization",
        "bearer",
        "privkey",
        "privatekey",
        "cookie",
        "cookies",
        "jwt",
    }
)
_GLUED_COMPOUNDS = (
    "apikey",
    "password",
    "passwd",
    "secretkey",
    "privatekey",
    "accesskey",
    "accesstoken",
    "authtoken",
    "refreshtoken",
    "clientsecret",
)
_CREDENTIAL_QUALIFIERS = frozenset(
    {
        "api",
        "access",
        "secret",
        "private",
        "ssh",
        "gpg",
        "pgp",
        "signing",
        "encryption",
        "master",
        "client",
        "service",
        "account",
        "license",
        "licence",
        "refresh",
        "session",
        "bearer",
        "csrf",
        "aws",
        "gcp",
        "azure",
        "openai",
        "mistral",
        "anthropic",
        "cohere",
        "groq",
        "hf",
        "huggingface",
        "github",
        "gh",
        "gitlab",
        "slack",
        "stripe",
        "twilio",
        "sendgrid",
        "discord",
        "telegram",
        "wandb",
        "pinecone",
    }
)
_DATA_WORDS_FOR_KEY = frozenset(
    {
        "sort",
        "primary",
        "foreign",
        "partition",
        "join",
        "merge",
        "group",
        "groupby",
        "dict",
        "index",
        "cache",
        "lookup",
        "map",
        "mapping",
        "column",
        "columns",
        "col",
        "cols",
        "row",
        "rows",
        "field",
        "fields",
        "name",
        "names",
        "hot",
        "composite",
        "unique",
        "natural",
        "surrogate",
        "func",
        "fn",
        "attr",
        "attribute",
        "path",
        "prefix",
        "suffix",
        "press",
        "pressed",
        "value",
        "values",
        "list",
        "set",
        "type",
        "types",
        "len",
        "length",
        "count",
        "music",
        "piano",
        "frame",
        "shard",
        "bucket",
        "hash",
        "id",
        "ids",
        # exception class names: KeyError is not a credential
        "error",
        "errors",
        "exception",
        "warning",
        # dataset fields in ML code: image_key="pixel_values", text_key="text"
        "image",
        "video",
        "audio",
        "text",
        "label",
        "labels",
        "input",
        "output",
        "target",
        "feature",
        "features",
    }
)
_DATA_WORDS_FOR_TOKEN = frozenset(
    {
        "count",
        "counts",
        "type",
        "types",
        "len",
        "length",
        "lengths",
        "limit",
        "limits",
        "budget",
        "usage",
        "idx",
        "index",
        "pos",
        "position",
        "positions",
        "num",
        "n",
        "max",
        "min",
        "total",
        "vocab",
        "embedding",
        "embeddings",
        "logprob",
        "logprobs",
        "prob",
        "probs",
        "start",
        "end",
        "span",
        "spans",
        "str",
        "text",
        "list",
        "freq",
        "frequency",
        "stream",
        # a tokenizer's special tokens: pad_token="<pad>", bos_token=None
        "pad",
        "bos",
        "eos",
        "unk",
        "sep",
        "cls",
        "mask",
        "special",
        "added",
        "image",
        "audio",
        "video",
        "sentinel",
        "placeholder",
        "word",
        "words",
        "subword",
        "char",
        "byte",
        "per",
        "loss",
        "level",
        "classification",
        "label",
        "labels",
        # where a token is kept, not the token
        "path",
        "file",
        "filename",
        "dir",
        # exception class names
        "error",
        "errors",
        "exception",
        "warning",
    }
)
_PASS_OWNERS = frozenset(
    {
        "db",
        "user",
        "admin",
        "root",
        "login",
        "ssh",
        "smtp",
        "mail",
        "email",
        "ftp",
        "proxy",
        "account",
        "sql",
        "pg",
        "mysql",
        "postgres",
        "redis",
        "mongo",
        "ldap",
        "sudo",
        "vpn",
        "wifi",
    }
)


def _name_parts(name: str) -> list[str]:
    return [part.lower() for part in _NAME_PART.findall(name)]


def _token_is_data(parts: list[str], part_set: set[str]) -> bool:
    # "token_ids" / "token_id" are NLP data, but "id_token" is an OpenID credential.
    followed_by_id = any(
        part == "token" and following in ("id", "ids")
        for part, following in itertools.pairwise(parts)
    )
    return followed_by_id or bool(part_set & _DATA_WORDS_FOR_TOKEN)


NOT_SECRET, AMBIGUOUS, SECRET = 0, 1, 2


@functools.lru_cache(maxsize=4096)
def secret_name_level(name: str) -> int:
    """:data:`SECRET` if a variable called ``name`` holds a credential, :data:`AMBIGUOUS`
    for a bare ``key`` / ``token`` that is as often data, :data:`NOT_SECRET` otherwise
    (rules: module doc)."""
    parts = _name_parts(name)
    if not parts:
        return NOT_SECRET
    part_set = set(parts)
    if part_set & _ALWAYS_SECRET_PARTS:
        return SECRET
    glued = "".join(parts)
    if any(compound in glued for compound in _GLUED_COMPOUNDS):
        return SECRET
    qualified = bool(part_set & _CREDENTIAL_QUALIFIERS)
    if len(parts) >= 2 and parts[-1] == "pass" and parts[-2] in _PASS_OWNERS:
        return SECRET
    if "key" in part_set and (qualified or not part_set & _DATA_WORDS_FOR_KEY):
        return SECRET if qualified else AMBIGUOUS
    if "token" in part_set and (qualified or not _token_is_data(parts, part_set)):
        return SECRET if qualified else AMBIGUOUS
    if part_set & {"keys", "tokens"} and qualified:
        return SECRET
    return NOT_SECRET


def is_secret_name(name: str) -> bool:
    """True if a variable called ``name`` may hold a credential (never shown to the model)."""
    return secret_name_level(name) != NOT_SECRET


_PATH_PREFIXES = ("/", "./", "../", "~/")


def looks_like_credential(value: str) -> bool:
    """Whether a value of an ambiguous name (``key``, ``token``) looks like a credential:
    at least 8 characters without spaces, not a path, URL or special-token marker
    (``<pad>``, ``[CLS]``), and letters mixed with digits, or 16+ characters mixing upper
    and lower case, or 32+ characters."""
    value = value.strip()
    if len(value) < 8 or any(c.isspace() for c in value):
        return False
    if value.startswith(_PATH_PREFIXES) or "://" in value:
        return False
    if value[0] in "<[" and value[-1] in ">]":
        return False
    has_digit = any(c.isdigit() for c in value)
    has_upper = any(c.isupper() for c in value)
    has_lower = any(c.islower() for c in value)
    if has_digit and (has_upper or has_lower):
        return True
    return (has_upper and has_lower and len(value) >= 16) or len(value) >= 32


_URL_WITHOUT_CREDENTIALS = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^/@\s]*(?:[/?#]\S*)?")


def is_secret_value_of(name: str, value: str) -> bool:
    """Whether ``value``, assigned to ``name``, must be redacted. A URL is never the secret
    itself (``authorization_url``, ``token_url``): its credentials, if any, are found by the
    URL pattern."""
    level = secret_name_level(name)
    if level == NOT_SECRET or _URL_WITHOUT_CREDENTIALS.fullmatch(value.strip()):
        return False
    return level == SECRET or looks_like_credential(value)


# --------------------------------------------------------------------------------------------
# Value patterns. Each runs in linear time on any input: a match attempt either succeeds
# consuming the run it scanned, or fails after a bounded scan (starts are anchored with
# look-behinds at the start of a run, repeats are unambiguous). The adversarial-input tests
# in tests/test_context_redact.py guard this.

_Replacement = str | Callable[[re.Match[str]], str]


class _Lazy:
    """A pattern compiled on first use. The prefilter skips most patterns for most texts,
    so compiling all of them at import (~6 ms of the first question after ``%load_ext``,
    issue #12) was mostly wasted. Two threads at once may compile one twice: harmless."""

    __slots__ = ("_compiled", "_flags", "_source")

    def __init__(self, source: str, flags: int = 0) -> None:
        self._source = source
        self._flags = flags
        self._compiled: re.Pattern[str] | None = None

    def __getattr__(self, name: str) -> Any:  # match, subn, finditer: the pattern's own
        compiled = self._compiled
        if compiled is None:
            compiled = self._compiled = re.compile(self._source, self._flags)
        return getattr(compiled, name)


def _keep_group1(match: re.Match[str]) -> str:
    return match.group(1) + REDACTED


def _redact_if_digit(match: re.Match[str]) -> str:
    # Real keys mix in digits; "sk-learn-style-identifiers-without-numbers" are left alone.
    return REDACTED if any(c.isdigit() for c in match.group(0)) else match.group(0)


# The name before a quoted value is read *backwards* from the separator (a cheap anchored
# match on the reversed text, not a search). Which name a separator belongs to depends on it:
# * ``=`` : ``NAME = "v"``, ``os.environ["NAME"] = "v"``, ``name: str = "v"`` (the name
#   before an annotation);
# * ``:`` : the name right before the colon: ``"password": "v"``, ``api_key: 'v'`` (so in
#   ``PermissionError: api_key: 'v'`` the name is api_key, and in ``KeyError: 'revenu'`` it
#   is KeyError, an exception, not a credential);
# * ``,`` : only a quoted name, as in ``os.environ.setdefault("API_KEY", "v")`` (never a
#   variable: ``open(path_token, 'w')`` passes a file mode, not a token).
_REVERSED_NAME_BEFORE_EQUALS = _Lazy(
    r"[ \t]*(?:(?:\][^\]\n]{0,80}\[)?[\w.]{0,80}[A-Za-z_][ \t]*:[ \t]*)?\]?[\"']?"
    r"([A-Za-z0-9_]{0,80}[A-Za-z_])(?![A-Za-z0-9_])"
)
_REVERSED_NAME_BEFORE_COLON = _Lazy(
    r"[ \t]*(?:\][ \t]*)?[\"']?([A-Za-z0-9_]{0,80}[A-Za-z_])(?![A-Za-z0-9_])"
)
_REVERSED_QUOTED_NAME_BEFORE_COMMA = _Lazy(
    r"[ \t]*([\"'])([A-Za-z0-9_]{0,80}[A-Za-z_])\1(?![A-Za-z0-9_])"
)


def _name_before(match: re.Match[str]) -> str | None:
    """The name a quoted value is assigned to (see above), or None."""
    before = match.string[max(0, match.start() - 200) : match.start()][::-1]
    separator = match.group("sep").strip()
    if separator == ",":
        found = _REVERSED_QUOTED_NAME_BEFORE_COMMA.match(before)
        return found.group(2)[::-1] if found else None
    if separator == ":":
        found = _REVERSED_NAME_BEFORE_COLON.match(before)
    else:
        found = _REVERSED_NAME_BEFORE_EQUALS.match(before)
    return found.group(1)[::-1] if found else None


def _redact_quoted_value_of_secret_name(match: re.Match[str]) -> str:
    """``NAME = "value"`` / ``"name": "value"`` / ``name: str = "value"`` / ``f("name", "v")``:
    the pattern matches from the separator on; the name is read back from just before it."""
    name = _name_before(match)
    value = match.group(0)[match.end("quote") - match.start() : -1]
    if name is None or not is_secret_value_of(name, value):
        return match.group(0)
    quote = match.group("quote")
    return match.group("sep") + match.group("prefix") + quote + REDACTED + quote


_CODE_WORDS = frozenset({"None", "True", "False", "null", "true", "false", "none", "nil"})
_DOTTED_NAME = _Lazy(r"[A-Za-z_][\w.]*|\d[\d._]*")


def _is_code(value: str, following: str) -> bool:
    """Whether ``NAME=value`` is code rather than a setting: a keyword (``bos_token=None``),
    a call or subscript (``key=os.getenv(…)``), a variable or number passed as a keyword
    argument (``Mistral(api_key=api_key)``), a shell reference (``TOKEN=$HF_TOKEN``)."""
    if value in _CODE_WORDS or value.startswith("$") or following in ("(", "["):
        return True
    return following in (",", ")") and _DOTTED_NAME.fullmatch(value) is not None


def _redact_named_bare_value(match: re.Match[str]) -> str:
    value = match.group("value")
    following = match.string[match.end() : match.end() + 1]
    if _is_code(value, following) or not is_secret_value_of(match.group("name"), value):
        return match.group(0)
    return match.group(0)[: match.start("value") - match.start(0)] + REDACTED


def _redact_unless_inside_word(match: re.Match[str]) -> str:
    """Token formats with a fixed prefix: only where the prefix starts a word."""
    start = match.start()
    if start and (match.string[start - 1].isalnum() or match.string[start - 1] == "_"):
        return match.group(0)
    return REDACTED


# A line break in a PEM block, also as it looks inside repr() and string literals (``\n``),
# and escaped again (``\\n``: a JSON key file inside a repr).
_PEM_BREAK = r"(?:\r?\n|(?:\\{1,4}r)?\\{1,4}n)"
_PEM_BEGIN = r"-----BEGIN[ A-Z0-9]{0,40}PRIVATE KEY(?: BLOCK)?-----"
_PEM_END = r"-----END[ A-Z0-9]{0,40}PRIVATE KEY(?: BLOCK)?-----"
_PEM_BLOCK = _Lazy(
    _PEM_BEGIN + r"[ \t]*" + _PEM_BREAK + r"(?:[A-Za-z\-]{1,40}:[^\n\\]{0,200}" + _PEM_BREAK + ")*"
    # Proc-Type: / DEK-Info: headers, then base64 lines (each ends in a break)
    r"(?:[ \t]*[A-Za-z0-9+/=]*[ \t]*" + _PEM_BREAK + ")*"
    r"[A-Za-z0-9+/=]*"  # a last line cut short by clipping
    r"(?:" + _PEM_END + ")?"
)
_PEM_END_MARK = _Lazy(_PEM_END)
# The whole base64 lines right before an END line whose BEGIN was cut away, read backwards
# from the END line: a line break, then lines that are base64 from break to break (or to the
# start of the text); a line of prose (inner spaces, punctuation) stops it.
_REVERSED_PEM_BREAK = r"(?:\n\r?|n\\{1,4}(?:r\\{1,4})?)"
_REVERSED_PEM_LINE = r"[ \t]*[A-Za-z0-9+/=]+[ \t]*(?=" + _REVERSED_PEM_BREAK + r"|\Z)"
_REVERSED_HEADLESS_PEM_BODY = _Lazy(
    r"(?:[ \t]*" + _REVERSED_PEM_BREAK + r")?"
    r"(?:" + _REVERSED_PEM_LINE + r"(?:" + _REVERSED_PEM_BREAK + _REVERSED_PEM_LINE + r")*)?"
)
#: How far back from an END line a headless PEM body is looked for (8192-bit RSA: ~6.5 kB).
_PEM_BODY_CHARS = 8000


def _redact_headless_pem(text: str) -> str:
    """The tail of a private key whose BEGIN line is not in the text (cut off by a front end
    or a clip before it reached us): the base64 lines before the END line and the END line."""
    pieces: list[str] = []
    position = 0
    for end in _PEM_END_MARK.finditer(text):
        window_start = max(position, end.start() - _PEM_BODY_CHARS)
        reversed_before = text[window_start : end.start()][::-1]
        body = _REVERSED_HEADLESS_PEM_BODY.match(reversed_before)
        start = end.start() - (body.end() if body else 0)
        pieces.append(text[position:start])
        pieces.append(REDACTED)
        position = end.end()
    if not pieces:
        return text
    pieces.append(text[position:])
    return "".join(pieces)


# (prefilter, pattern, replacement). The prefilter is a lower-case substring (or a tuple of
# them, any of which) that must occur in the lower-cased text for the pattern to be worth
# running (None: always run). Patterns start with a literal where possible so the regex
# engine can skip ahead quickly; word-boundary checks then happen in the replacement.
_PATTERNS: tuple[tuple[str | tuple[str, ...] | None, _Lazy, _Replacement], ...] = (
    ("private key", _PEM_BLOCK, REDACTED),
    ("://", _Lazy(r"(://[^\s:/@?#'\"<>]*:)[^\s@/?#'\"<>]+(?=@)"), _keep_group1),
    (
        "=",
        _Lazy(
            r"([?&;](?:password|passwd|pwd|pass|secret|client_secret|token|access_token|"
            r"refresh_token|id_token|api_key|apikey|key|auth|sig|signature)=)[^&\s#'\"<>]+",
            re.IGNORECASE,
        ),
        _keep_group1,
    ),
    (("sk-", "rk-"), _Lazy(r"(?<![A-Za-z0-9_\-])[sr]k-[A-Za-z0-9_\-]{20,}"), _redact_if_digit),
    (
        ("sk_", "rk_"),
        _Lazy(r"[sr]k_(?:live|test)_[A-Za-z0-9]{16,}"),
        _redact_unless_inside_word,
    ),
    (
        ("akia", "asia"),
        _Lazy(r"A[KS]IA[A-Z0-9]{16}(?![A-Za-z0-9])"),
        _redact_unless_inside_word,
    ),
    (
        "aws",
        _Lazy(
            r"(aws_?secret_?access_?key[\"']?\]?\s*[:=]\s*[\"']?)[A-Za-z0-9/+=]{40}",
            re.IGNORECASE,
        ),
        _keep_group1,
    ),
    ("bearer", _Lazy(r"\b(bearer\s+)[A-Za-z0-9\-._~+/]{8,}=*", re.IGNORECASE), _keep_group1),
    (
        "authorization",
        _Lazy(
            r"(authorization[\"']?\s*[:=]\s*[\"']?(?:basic|token)\s+)[A-Za-z0-9\-._~+/]{6,}=*",
            re.IGNORECASE,
        ),
        _keep_group1,
    ),
    (
        ("ghp_", "gho_", "ghu_", "ghs_", "ghr_"),
        _Lazy(r"gh[pousr]_[A-Za-z0-9]{30,255}"),
        _redact_unless_inside_word,
    ),
    ("github_pat_", _Lazy(r"github_pat_[A-Za-z0-9_]{22,255}"), _redact_unless_inside_word),
    ("glpat-", _Lazy(r"glpat-[A-Za-z0-9_\-]{20,}"), _redact_unless_inside_word),
    ("hf_", _Lazy(r"hf_[A-Za-z0-9]{30,}"), _redact_unless_inside_word),
    ("xox", _Lazy(r"xox[abposr]-[A-Za-z0-9\-]{10,}"), _redact_unless_inside_word),
    ("aiza", _Lazy(r"AIza[0-9A-Za-z\-_]{35}"), _redact_unless_inside_word),
    (
        "eyj",
        _Lazy(r"(?<![A-Za-z0-9_\-])eyJ[A-Za-z0-9_\-]{8,}\.eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]*"),
        REDACTED,
    ),
    (
        ("key", "token", "secret", "pass", "pwd", "auth", "cred", "bearer", "cookie", "jwt"),
        _Lazy(
            r"(?P<sep>(?:[:=]=?|,)[ \t]*)(?P<prefix>[rRbBuUfF]{0,2})"
            r"(?P<quote>[\"'])(?:(?<=\")[^\"\n]+\"|(?<=')[^'\n]+')"
        ),
        _redact_quoted_value_of_secret_name,
    ),
    (
        # NAME=value anywhere: .env lines, `export`, shell lines, Markdown prose
        # ("set WANDB_API_KEY=…"), connection strings ("…;AccountKey=…;"). Starts only at
        # the beginning of a name (the look-behind), so a long identifier is scanned once.
        ("key", "token", "secret", "pass", "pwd", "auth", "cred", "bearer", "cookie", "jwt"),
        _Lazy(
            r"(?<![A-Za-z0-9_.$\-])(?P<name>[A-Za-z_][A-Za-z0-9_]*)=(?!=)"
            r"(?P<value>[^\s'\"`,;&#()<>\[\]{}]+)"
        ),
        _redact_named_bare_value,
    ),
    (
        # NAME: value on a line of its own (YAML, HTTP headers, printed settings); quoted
        # values are the quoted pattern's
        ("key", "token", "secret", "pass", "pwd", "auth", "cred", "bearer", "cookie", "jwt"),
        _Lazy(
            r"(?m)^[ \t]*(?:-[ \t]+)?(?P<name>[A-Za-z_][A-Za-z0-9_-]*)[ \t]*:[ \t]+"
            r"(?P<value>[^\s'\"#][^\s#]*)[ \t]*$"
        ),
        _redact_named_bare_value,
    ),
    (
        "env",
        _Lazy(
            r"%(?:set_)?env[ \t]+(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:[ \t]*=[ \t]*|[ \t]+)"
            r"(?P<value>[^\s'\"]\S*)"
        ),
        _redact_named_bare_value,
    ),
    (
        ("key", "token", "pass", "secret"),
        _Lazy(
            # a flag starts a word: "--token x", not "per-token loss"
            r"((?<![A-Za-z0-9_\-])--?(?:api[-_]?key|token|access[-_]token|auth[-_]token|"
            r"password|passwd|secret)(?:=|[ \t]+))[^\s'\"$-]\S*",
            re.IGNORECASE,
        ),
        _keep_group1,
    ),
)


#: Environment variables whose names match the rules but which hold no secret: the shell's
#: working directories (redacting those would hide every path in tracebacks) and sockets.
_ENVIRONMENT_NOT_SECRET = frozenset({"PWD", "OLDPWD", "SSH_AUTH_SOCK", "GPG_AGENT_INFO"})


def _fragments(prefilter: str | tuple[str, ...] | None) -> tuple[str, ...]:
    if prefilter is None:
        return ()
    return (prefilter,) if isinstance(prefilter, str) else prefilter


# (fragments, pattern, replacement): a pattern runs when one of its fragments occurs
_RUNNABLE = tuple(
    (frozenset(_fragments(prefilter)), pattern, replacement)
    for prefilter, pattern, replacement in _PATTERNS
)
_ALL_FRAGMENTS = frozenset(f for fragments, _, _ in _RUNNABLE for f in fragments)
# One scan tells whether any prefilter fragment occurs at all. Most short texts (table cells,
# column names) hold none, and a substring test per fragment per text dominated their cost.
_ANY_FRAGMENT = re.compile("|".join(map(re.escape, sorted(_ALL_FRAGMENTS))))


def _present_fragments(lowered: str) -> set[str]:
    if _ANY_FRAGMENT.search(lowered) is None:
        return set()
    return {fragment for fragment in _ALL_FRAGMENTS if fragment in lowered}


class Redactor:
    """Replaces secrets in text with ``[REDACTED]``.

    ``secrets`` are literal values to remove wherever they occur (e.g. the configured Mistral
    key); values shorter than :data:`MIN_SECRET_LENGTH` characters are ignored. On top of
    those, common credential formats are always removed: ``sk-…`` keys, AWS key ids and secret
    keys, ``Bearer …`` tokens, GitHub / GitLab / Hugging Face / Slack / Google / Stripe tokens,
    JWTs, PEM private-key blocks, passwords in URLs (``postgres://user:pass@host``) and query
    strings (``?password=…``), and quoted or ``.env``-style assignments to secret-looking names
    (``API_KEY = "…"``, ``export TOKEN=…``, ``%env OPENAI_API_KEY=…``).

    Each pattern is precompiled, runs once over the text, and is skipped outright when a cheap
    substring test shows it cannot match; all patterns are linear-time.
    """

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        literals = {
            s
            for s in secrets
            if isinstance(s, str) and len(s.strip()) >= MIN_SECRET_LENGTH and s != REDACTED
        }
        self._secrets: frozenset[str] = frozenset(literals)
        ordered = sorted(literals, key=len, reverse=True)
        self._literal_pattern = re.compile("|".join(map(re.escape, ordered))) if ordered else None

    @property
    def secrets(self) -> frozenset[str]:
        """The literal secrets this redactor removes."""
        return self._secrets

    def with_secrets(self, more: Iterable[str]) -> Redactor:
        """A new redactor that also removes the literal secrets in ``more``."""
        return Redactor([*self._secrets, *more])

    @classmethod
    def from_environment(
        cls, secrets: Iterable[str] = (), environ: Mapping[str, str] | None = None
    ) -> Redactor:
        """A redactor for ``secrets`` plus the values of secret-named environment variables
        (``MISTRAL_API_KEY``, ``AWS_SECRET_ACCESS_KEY``, ``DB_PASSWORD``, …)."""
        env = os.environ if environ is None else environ
        from_env = [
            value
            for name, value in env.items()
            if is_secret_value_of(name, value) and name.upper() not in _ENVIRONMENT_NOT_SECRET
        ]
        return cls([*secrets, *from_env])

    def redact(self, text: str) -> str:
        """``text`` with its secrets replaced by ``[REDACTED]``."""
        return self.redact_counting(text)[0]

    def redact_counting(self, text: str) -> tuple[str, int]:
        """:meth:`redact`, and an upper bound on the number of replacements made (for
        :func:`~mistral_magic.context.fit.redact_bounded`: how far text may have moved)."""
        if not text:
            return text, 0
        count = 0
        if self._literal_pattern is not None:
            text, made = self._literal_pattern.subn(REDACTED, text)
            count += made
        lowered = text.lower()
        present = _present_fragments(lowered)
        for fragments, pattern, replacement in _RUNNABLE:
            if fragments and present.isdisjoint(fragments):
                continue
            text, made = pattern.subn(replacement, text)
            count += made
        if "private key" in lowered and "-----END" in text:
            text = _redact_headless_pem(text)
            count += 1
        return text, count

    def __repr__(self) -> str:  # never show the secrets themselves
        return f"Redactor({len(self._secrets)} literal secrets)"
