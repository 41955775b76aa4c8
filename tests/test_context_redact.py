"""Secret names and secret values, in both directions."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from mistral_magic.context.redact import REDACTED, Redactor, is_secret_name

SECRET_NAMES = [
    "OPENAI_API_KEY",
    "MISTRAL_API_KEY",
    "mistral_key",
    "api_key",
    "apiKey",
    "APIKEY",
    "OPENAIAPIKEY",
    "key",
    "token",
    "hf_token",
    "GITHUB_TOKEN",
    "id_token",
    "session_token",
    "access_tokens",
    "api_keys",
    "ssh_keys",
    "db_password",
    "myPassword",
    "PASSWORD",
    "passwd",
    "pwd",
    "db_pass",
    "secret",
    "client_secret",
    "aws_secret_access_key",
    "credentials",
    "creds",
    "auth",
    "auth_header",
    "HTTPAuthToken",
    "bearer",
    "private_key",
    "api_key_column",  # a credential qualifier wins over a data word
]
ORDINARY_NAMES = [
    "monkey",
    "monkeys",
    "donkey",
    "turkey",
    "hockey",
    "keyboard",
    "keyword",
    "keywords",
    "keys",
    "keys_df",
    "dict_keys",
    "sort_key",
    "primary_key",
    "key_column",
    "key_cols",
    "tokenizer",
    "tokenized",
    "tokens",
    "num_tokens",
    "max_tokens",
    "token_count",
    "token_ids",
    "token_id",
    "author",
    "authors_df",
    "passenger",
    "passes",
    "pass_rate",
    "bypass",
    "first_pass",
    "compass",
    "secretary",
    "df",
    "sales",
    "x",
]


@pytest.mark.parametrize("name", SECRET_NAMES)
def test_secret_names(name):
    assert is_secret_name(name)


@pytest.mark.parametrize("name", ORDINARY_NAMES)
def test_ordinary_names(name):
    assert not is_secret_name(name)


# --------------------------------------------------------------------------------------------
# Values

SECRET_TEXTS = {
    "openai key": (
        "key: sk-proj-abcDEF1234567890abcdefXYZ done",
        "sk-proj-abcDEF1234567890abcdefXYZ",
    ),
    "legacy sk key": ("sk-1234567890abcdefghijklmnopqrstuvwxyzABCD", "1234567890abcdefghij"),
    "anthropic key": ("sk-ant-api03-abcdefghijklmnop1234567890", "abcdefghijklmnop1234567890"),
    "aws key id": ("id=AKIAIOSFODNN7EXAMPLE", "AKIAIOSFODNN7EXAMPLE"),
    "aws session id": ("ASIAY34FZKBOKMUTVV7A", "ASIAY34FZKBOKMUTVV7A"),
    "aws secret": (
        "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    ),
    "bearer": ("Authorization: Bearer abc.def-ghi_jkl123", "abc.def-ghi_jkl123"),
    "github classic": (
        "ghp_abcdefghijklmnopqrstuvwxyz0123456789",
        "ghp_abcdefghijklmnopqrstuvwxyz0123456789",
    ),
    "github fine-grained": (
        "github_pat_11ABCDEFG0123456789_abcdefghijklmnop",
        "github_pat_11ABCDEFG0123456789_abcdefghijklmnop",
    ),
    "slack": ("xoxb-123456789012-abcdefghij", "xoxb-123456789012-abcdefghij"),
    "google": (
        "AIzaSyA1234567890abcdefghijklmnopqrstuv",
        "AIzaSyA1234567890abcdefghijklmnopqrstuv",
    ),
    "hugging face": (
        "hf_abcdefghijklmnopqrstuvwxyzABCDEFGH",
        "hf_abcdefghijklmnopqrstuvwxyzABCDEFGH",
    ),
    "jwt": (
        "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
        "dozjgNryP4J3jVmNHl0w5N",
    ),
    "private key block": (
        "before\n-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA75\nabcdef\n"
        "-----END RSA PRIVATE KEY-----\nafter",
        "MIIEpAIBAAKCAQEA75",
    ),
    "clipped private key block": (
        "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\nQyNTUxOQAAACD",
        "b3BlbnNzaC1rZXktdjEAAAAA",
    ),
    "postgres url": ("postgres://user:hunter2@db.example.com:5432/app", "hunter2"),
    "redis url without user": ("redis://:s3cr3tpass@cache:6379/0", "s3cr3tpass"),
    "query password": ("https://x.example.com/login?user=bob&password=hunter2&q=1", "hunter2"),
    "quoted assignment": ('MISTRAL_API_KEY = "zzzzzzzz1"', "zzzzzzzz1"),
    "environ item": ("os.environ['OPENAI_API_KEY'] = 'abc123'", "abc123"),
    "keyword argument": ('client = Mistral(api_key="xyz123")', "xyz123"),
    "annotated": ('db_password: str = "pw-1"', "pw-1"),
    "dict entry": ("{'password': 'letmein', 'user': 'bob'}", "letmein"),
    "setdefault call": ('os.environ.setdefault("API_KEY", "abc-1")', "abc-1"),
    "apostrophe in value": ('password = "it\'s mine"', "mine"),
    "export": ("export HF_TOKEN=hf_xxx", "hf_xxx"),
    "dotenv": ("MISTRAL_API_KEY=abcd1234\nOTHER=1", "abcd1234"),
    "env magic": ("%env MISTRAL_API_KEY=abcd", "abcd"),
    "env magic, space form": ("%env OPENAI_API_KEY abcd", "abcd"),
    "cli flag": ("!tool --api-key k-12345 run", "k-12345"),
}


@pytest.mark.parametrize(("text", "secret"), SECRET_TEXTS.values(), ids=SECRET_TEXTS.keys())
def test_secret_values_are_redacted(text, secret):
    redacted = Redactor().redact(text)
    assert secret not in redacted
    assert REDACTED in redacted


def test_context_around_secrets_is_kept():
    redactor = Redactor()
    assert redactor.redact("postgres://user:hunter2@db:5432/app") == (
        f"postgres://user:{REDACTED}@db:5432/app"
    )
    assert redactor.redact('API_KEY = "abc"') == f'API_KEY = "{REDACTED}"'
    assert redactor.redact("Bearer abcdefgh12") == f"Bearer {REDACTED}"
    text = "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\nafter"
    assert redactor.redact(text) == f"{REDACTED}\nafter"


ORDINARY_TEXTS = [
    "import sklearn  # sk-learn is scikit-learn, and risk-adjusted-return-calculation is fine",
    "https://example.com:8080/path?page=2&sort=date",
    "ssh://git@github.com/org/repo.git",
    'sort_key = "date"\nname = "alice"\ntokens = ["a", "b"]',
    "keys_df = pd.DataFrame({'key': [1, 2]})",
    "monkey = 'banana'",
    'message = "it\'s the key to success"',
    "df.groupby('region').amount.sum()",
    "The authorization flow is described in the docs.",
    "ASIA is a continent; AKIA too short",
]


@pytest.mark.parametrize("text", ORDINARY_TEXTS)
def test_ordinary_text_is_untouched(text):
    assert Redactor().redact(text) == text


def test_literal_secrets():
    key = "Xy7.key+with(regex)chars"
    redactor = Redactor([key, "short"])
    text = f"the key is {key}; again {key}; short stays"
    assert redactor.redact(text) == f"the key is {REDACTED}; again {REDACTED}; short stays"
    assert "short" in redactor.redact("a short word")
    assert redactor.secrets == frozenset({key})
    assert key not in repr(redactor)


def test_longest_literal_wins():
    redactor = Redactor(["abcdefgh", "abcdefghijkl"])
    assert redactor.redact("xx abcdefghijkl yy") == f"xx {REDACTED} yy"


def test_with_secrets_and_environment():
    base = Redactor(["configured-key-1"])
    extended = base.with_secrets(["user-secret-22"])
    assert extended.redact("configured-key-1 user-secret-22") == f"{REDACTED} {REDACTED}"
    assert base.redact("user-secret-22") == "user-secret-22"
    env = {
        "MISTRAL_API_KEY": "env-mistral-key",
        "HOME": "/home/someone-long",
        "DB_PASSWORD": "pw",  # too short to be a literal secret
        "PWD": "/home/someone-long/project",  # the working directory, not a password
    }
    from_env = Redactor.from_environment(["configured-key-1"], environ=env)
    assert from_env.secrets == frozenset({"configured-key-1", "env-mistral-key"})


@pytest.mark.parametrize(
    "text",
    [
        "a" * 1_000_000,
        "sk-" * 350_000,
        "-sk-abcdefghij" * 75_000,
        "eyJ" * 350_000 + ".",
        "-eyJabcdefghij" * 75_000 + ".",
        "x://" * 250_000,
        "-----BEGIN RSA PRIVATE KEY-----\n" * 30_000,
        "-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4\n" * 25_000,
        "password=" * 100_000,
        "api_key = " * 100_000,
        ("word " * 10 + "\n") * 20_000,
    ],
    ids=[
        "letters",
        "sk",
        "sk-in-run",
        "jwt",
        "jwt-in-run",
        "urls",
        "pem",
        "pem-headers",
        "query",
        "assignments",
        "prose",
    ],
)
@pytest.mark.timeout(60, method="thread")  # linear takes well under a second; quadratic, minutes
def test_huge_adversarial_text_is_linear(text):
    # No clock assert (machines are noisy): the timeout is the bound, benchmarks hold figures.
    assert Redactor(["some-configured-secret"]).redact(text) is not None


# --------------------------------------------------------------------------------------------
# The corpus (tests/redaction_corpus): ordinary notebook text that must come through
# untouched, beside secrets that must not.

CORPUS = Path(__file__).parent / "redaction_corpus"
ORDINARY_FILES = sorted((CORPUS / "ordinary").iterdir())


def secret_cases() -> dict[str, tuple[str, list[str]]]:
    """title -> (text, secrets) from secrets.txt (secrets written between ⟦ and ⟧)."""
    cases = {}
    for block in re.split(r"^### ", (CORPUS / "secrets.txt").read_text(), flags=re.M)[1:]:
        title, _, body = block.partition("\n")
        secrets = re.findall("⟦(.*?)⟧", body)
        assert secrets, f"case {title!r} marks no secret"
        cases[title] = (body.replace("⟦", "").replace("⟧", ""), secrets)
    return cases


SECRET_CASES = secret_cases()


@pytest.mark.parametrize("path", ORDINARY_FILES, ids=[p.name for p in ORDINARY_FILES])
def test_ordinary_notebook_text_comes_through_untouched(path):
    text = path.read_text()
    redacted = Redactor(["configured-mistral-key-0123456789"]).redact(text)
    changed = [
        f"{before!r}\n -> {after!r}"
        for before, after in zip(text.splitlines(), redacted.splitlines(), strict=True)
        if before != after
    ]
    assert not changed, "\n".join(changed)


@pytest.mark.parametrize(("text", "secrets"), SECRET_CASES.values(), ids=list(SECRET_CASES.keys()))
def test_corpus_secrets_are_redacted(text, secrets):
    redacted = Redactor().redact(text)
    for secret in secrets:
        assert secret not in redacted, redacted
        if len(secret) >= 16:  # not even a good part of it
            assert not any(secret[i : i + 12] in redacted for i in range(len(secret) - 11))


# --------------------------------------------------------------------------------------------
# The cases of issues 11 and 12, one by one


def test_exception_names_are_not_secret_names_and_the_right_name_is_read():
    redactor = Redactor()
    # the missing column is the most useful fact of the error
    assert redactor.redact("KeyError: 'revenu'") == "KeyError: 'revenu'"
    assert redactor.redact("KeyError in In[3]: 'revenu'") == "KeyError in In[3]: 'revenu'"
    assert not is_secret_name("KeyError") and not is_secret_name("TokenError")
    # ... while the name before the value, not the exception's, decides
    line = "PermissionError: api_key: 'abc123XYZsecret9' was rejected"
    assert redactor.redact(line) == f"PermissionError: api_key: '{REDACTED}' was rejected"
    summary = "PermissionError in In[7]: api_key: 'abc123XYZsecret9' was rejected"
    assert "abc123XYZsecret9" not in redactor.redact(summary)


PEM = "-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA75\nabcdef\n-----END RSA PRIVATE KEY-----\n"


@pytest.mark.parametrize(
    "text",
    [
        repr(PEM),
        repr(repr(PEM)),
        "{'k': '-----BEGIN OPENSSH PRIVATE KEY-----\\r\\nMIIEpAIBAAKCAQEA75\\r\\nabcdef'",
        "MIIEpAIBAAKCAQEA75\nabcdef0123456789\n-----END PRIVATE KEY-----\nafter",
    ],
    ids=["repr", "double-escaped", "crlf-escaped-cut", "headless"],
)
def test_private_keys_in_reprs_literals_and_halves(text):
    redacted = Redactor().redact(text)
    assert "MIIEpAIBAAKCAQEA75" not in redacted and "abcdef" not in redacted
    assert REDACTED in redacted


def test_headless_key_stops_at_prose():
    text = "the deploy notes say\nMIIEpAIBAAKCAQEA75\n-----END PRIVATE KEY-----"
    assert Redactor().redact(text) == f"the deploy notes say\n{REDACTED}"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "AccountName=acct;AccountKey=Zm9vYmFyYmF6cXV4MTIz==;EndpointSuffix=core.windows.net",
            f"AccountName=acct;AccountKey={REDACTED};EndpointSuffix=core.windows.net",
        ),
        (
            "Set `WANDB_API_KEY=0123abcd4567ef` in your shell",
            f"Set `WANDB_API_KEY={REDACTED}` in your shell",
        ),
        ("  api_key: abc123def456", f"  api_key: {REDACTED}"),
    ],
)
def test_name_value_pairs_anywhere(text, expected):
    assert Redactor().redact(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        'tokenizer = T(pad_token="<pad>", bos_token=None,\n    eos_token="</s>")',
        "loss = loss.mean()  # per-token loss",
        'batch = transform(batch, key="video")',
        "with open(path_token, 'w') as f:",
        "client = Mistral(api_key=api_key)\nkey=os.environ.get('K')",
        "    key=lambda x: x[1],",
        "!huggingface-cli login --token $HF_TOKEN",
        'authorization_url = "https://accounts.google.com/o/oauth2/v2/auth"',
    ],
)
def test_ordinary_code_false_positives_are_gone(text):
    assert Redactor().redact(text) == text


def test_ambiguous_names_redact_credential_looking_values_only():
    redactor = Redactor()
    assert redactor.redact('key = "input_ids"') == 'key = "input_ids"'
    assert redactor.redact('key = "a1B2c3D4e5F6"') == f'key = "{REDACTED}"'
    assert redactor.redact('token = "[CLS]"') == 'token = "[CLS]"'
    assert redactor.redact('api_key = "abc"') == f'api_key = "{REDACTED}"'  # qualified: any


def test_redact_counting_bounds_the_replacements():
    text, count = Redactor(["configured-key-1"]).redact_counting(
        "configured-key-1 and Bearer abcdefgh1234"
    )
    assert text == f"{REDACTED} and Bearer {REDACTED}"
    assert count >= 2
