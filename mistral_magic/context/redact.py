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
   ``sort_key``, ``primary_key``, ``key_column``, ``token_count``, ``max_token``, or
   ``token_id`` / ``token_ids`` (but ``id_token`` is an OpenID credential). A credential
   qualifier (api, access, secret, private, ssh, aws, openai, mistral, github, hf, refresh,
   session, …) always wins over such a data word (``api_key_column`` is secret).
4. The plurals ``keys`` / ``tokens`` are secret only next to a credential qualifier
   (``api_keys``, ``ssh_keys``, ``access_tokens``); plain ``keys``, ``keys_df``,
   ``tokens``, ``max_tokens`` are ordinary data.
5. ``pass`` as the last part after an account word is secret (``db_pass``, ``smtp_pass``);
   ``pass_rate``, ``bypass``, ``passes`` are not.

Anything else (``monkey``, ``keyword``, ``tokenizer``, ``donkey``, ``passenger``) is not secret.
False positives only hide a variable from the model; false negatives are still caught by
the value patterns of :class:`Redactor`.
"""

from __future__ import annotations

import functools
import itertools
import os
import re
from collections.abc import Callable, Iterable, Mapping

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


@functools.lru_cache(maxsize=4096)
def is_secret_name(name: str) -> bool:
    """True if a variable called ``name`` probably holds a credential (rules: module doc)."""
    parts = _name_parts(name)
    if not parts:
        return False
    part_set = set(parts)
    if part_set & _ALWAYS_SECRET_PARTS:
        return True
    glued = "".join(parts)
    if any(compound in glued for compound in _GLUED_COMPOUNDS):
        return True
    qualified = bool(part_set & _CREDENTIAL_QUALIFIERS)
    if "key" in part_set and (qualified or not part_set & _DATA_WORDS_FOR_KEY):
        return True
    if "token" in part_set and (qualified or not _token_is_data(parts, part_set)):
        return True
    if part_set & {"keys", "tokens"} and qualified:
        return True
    return len(parts) >= 2 and parts[-1] == "pass" and parts[-2] in _PASS_OWNERS


# --------------------------------------------------------------------------------------------
# Value patterns. Each runs in linear time on any input: a match attempt either succeeds
# consuming the run it scanned, or fails after a bounded scan (starts are anchored with
# look-behinds at the start of a run, repeats are unambiguous). The adversarial-input tests
# in tests/test_context_redact.py guard this.

_Replacement = str | Callable[[re.Match[str]], str]


def _keep_group1(match: re.Match[str]) -> str:
    return match.group(1) + REDACTED


def _redact_if_digit(match: re.Match[str]) -> str:
    # Real keys mix in digits; "sk-learn-style-identifiers-without-numbers" are left alone.
    return REDACTED if any(c.isdigit() for c in match.group(0)) else match.group(0)


# The name before a quoted value, read *backwards* from the separator (so it is a cheap
# anchored match, not a search): NAME ["'] [\]] [: Type] <separator>, reversed.
_REVERSED_NAME_BEFORE_VALUE = re.compile(
    r"[ \t]*(?:(?:\][^\]\n]{0,80}\[)?[\w.]{0,80}[A-Za-z_][ \t]*:[ \t]*)?\]?[\"']?"
    r"([A-Za-z0-9_]{0,80}[A-Za-z_])(?![A-Za-z0-9_])"
)


def _redact_quoted_value_of_secret_name(match: re.Match[str]) -> str:
    """``NAME = "value"`` / ``"name": "value"`` / ``name: str = "value"`` / ``f("name", "v")``:
    the pattern matches from the separator on; the name is read back from just before it."""
    before = match.string[max(0, match.start() - 200) : match.start()]
    name = _REVERSED_NAME_BEFORE_VALUE.match(before[::-1])
    if name is None or not is_secret_name(name.group(1)[::-1]):
        return match.group(0)
    quote = match.group("quote")
    return match.group("sep") + match.group("prefix") + quote + REDACTED + quote


def _redact_named_bare_value(match: re.Match[str]) -> str:
    if not is_secret_name(match.group("name")):
        return match.group(0)
    return match.group(0)[: match.start("value") - match.start(0)] + REDACTED


def _redact_unless_inside_word(match: re.Match[str]) -> str:
    """Token formats with a fixed prefix: only where the prefix starts a word."""
    start = match.start()
    if start and (match.string[start - 1].isalnum() or match.string[start - 1] == "_"):
        return match.group(0)
    return REDACTED


# (prefilter, pattern, replacement). The prefilter is a lower-case substring (or a tuple of
# them, any of which) that must occur in the lower-cased text for the pattern to be worth
# running (None: always run). Patterns start with a literal where possible so the regex
# engine can skip ahead quickly; word-boundary checks then happen in the replacement.
_PATTERNS: tuple[tuple[str | tuple[str, ...] | None, re.Pattern[str], _Replacement], ...] = (
    (
        "private key",
        re.compile(
            r"-----BEGIN[ A-Z0-9]{0,40}PRIVATE KEY(?: BLOCK)?-----[ \t]*\r?\n"
            r"(?:[A-Za-z\-]{1,40}:[^\n]{0,200}\n)*"  # Proc-Type: / DEK-Info: headers
            r"(?:[ \t]*[A-Za-z0-9+/=]*[ \t]*\r?\n)*"  # base64 lines (each ends in a newline)
            r"[A-Za-z0-9+/=]*"  # a last line cut short by clipping
            r"(?:-----END[ A-Z0-9]{0,40}PRIVATE KEY(?: BLOCK)?-----)?"
        ),
        REDACTED,
    ),
    ("://", re.compile(r"(://[^\s:/@?#'\"<>]*:)[^\s@/?#'\"<>]+(?=@)"), _keep_group1),
    (
        "=",
        re.compile(
            r"([?&;](?:password|passwd|pwd|pass|secret|client_secret|token|access_token|"
            r"refresh_token|id_token|api_key|apikey|key|auth|sig|signature)=)[^&\s#'\"<>]+",
            re.IGNORECASE,
        ),
        _keep_group1,
    ),
    (("sk-", "rk-"), re.compile(r"(?<![A-Za-z0-9_\-])[sr]k-[A-Za-z0-9_\-]{20,}"), _redact_if_digit),
    (
        ("sk_", "rk_"),
        re.compile(r"[sr]k_(?:live|test)_[A-Za-z0-9]{16,}"),
        _redact_unless_inside_word,
    ),
    (
        ("akia", "asia"),
        re.compile(r"A[KS]IA[A-Z0-9]{16}(?![A-Za-z0-9])"),
        _redact_unless_inside_word,
    ),
    (
        "aws",
        re.compile(
            r"(aws_?secret_?access_?key[\"']?\]?\s*[:=]\s*[\"']?)[A-Za-z0-9/+=]{40}",
            re.IGNORECASE,
        ),
        _keep_group1,
    ),
    ("bearer", re.compile(r"\b(bearer\s+)[A-Za-z0-9\-._~+/]{8,}=*", re.IGNORECASE), _keep_group1),
    (
        "authorization",
        re.compile(
            r"(authorization[\"']?\s*[:=]\s*[\"']?(?:basic|token)\s+)[A-Za-z0-9\-._~+/]{6,}=*",
            re.IGNORECASE,
        ),
        _keep_group1,
    ),
    (
        ("ghp_", "gho_", "ghu_", "ghs_", "ghr_"),
        re.compile(r"gh[pousr]_[A-Za-z0-9]{30,255}"),
        _redact_unless_inside_word,
    ),
    ("github_pat_", re.compile(r"github_pat_[A-Za-z0-9_]{22,255}"), _redact_unless_inside_word),
    ("glpat-", re.compile(r"glpat-[A-Za-z0-9_\-]{20,}"), _redact_unless_inside_word),
    ("hf_", re.compile(r"hf_[A-Za-z0-9]{30,}"), _redact_unless_inside_word),
    ("xox", re.compile(r"xox[abposr]-[A-Za-z0-9\-]{10,}"), _redact_unless_inside_word),
    ("aiza", re.compile(r"AIza[0-9A-Za-z\-_]{35}"), _redact_unless_inside_word),
    (
        "eyj",
        re.compile(
            r"(?<![A-Za-z0-9_\-])eyJ[A-Za-z0-9_\-]{8,}\.eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]*"
        ),
        REDACTED,
    ),
    (
        ("key", "token", "secret", "pass", "pwd", "auth", "cred", "bearer", "cookie", "jwt"),
        re.compile(
            r"(?P<sep>(?:[:=]=?|,)[ \t]*)(?P<prefix>[rRbBuUfF]{0,2})"
            r"(?P<quote>[\"'])(?:(?<=\")[^\"\n]+\"|(?<=')[^'\n]+')"
        ),
        _redact_quoted_value_of_secret_name,
    ),
    (
        "=",
        re.compile(
            r"(?m)^[ \t]*(?:export[ \t]+)?(?P<name>[A-Za-z_][A-Za-z0-9_]*)="
            r"(?P<value>[^\s'\"][^\s]*)"
        ),
        _redact_named_bare_value,
    ),
    (
        "env",
        re.compile(
            r"%(?:set_)?env[ \t]+(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:[ \t]*=[ \t]*|[ \t]+)"
            r"(?P<value>[^\s'\"]\S*)"
        ),
        _redact_named_bare_value,
    ),
    (
        ("key", "token", "pass", "secret"),
        re.compile(
            r"(--?(?:api[-_]?key|token|access[-_]token|auth[-_]token|password|passwd|secret)"
            r"(?:=|[ \t]+))[^\s'\"-]\S*",
            re.IGNORECASE,
        ),
        _keep_group1,
    ),
)


#: Environment variables whose names match the rules but which hold no secret: the shell's
#: working directories (redacting those would hide every path in tracebacks) and sockets.
_ENVIRONMENT_NOT_SECRET = frozenset({"PWD", "OLDPWD", "SSH_AUTH_SOCK", "GPG_AGENT_INFO"})


def _occurs(prefilter: str | tuple[str, ...], lowered: str) -> bool:
    if isinstance(prefilter, str):
        return prefilter in lowered
    return any(fragment in lowered for fragment in prefilter)


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
            if is_secret_name(name) and name.upper() not in _ENVIRONMENT_NOT_SECRET
        ]
        return cls([*secrets, *from_env])

    def redact(self, text: str) -> str:
        if not text:
            return text
        if self._literal_pattern is not None:
            text = self._literal_pattern.sub(REDACTED, text)
        lowered = text.lower()
        for prefilter, pattern, replacement in _PATTERNS:
            if prefilter is not None and not _occurs(prefilter, lowered):
                continue
            text = pattern.sub(replacement, text)
        return text

    def __repr__(self) -> str:  # never show the secrets themselves
        return f"Redactor({len(self._secrets)} literal secrets)"
