"""Secret names and secret values, in both directions."""

from __future__ import annotations

import time

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
def test_huge_adversarial_text_is_linear(text):
    started = time.perf_counter()
    Redactor(["some-configured-secret"]).redact(text)
    assert time.perf_counter() - started < 2.0  # quadratic behaviour would take minutes
