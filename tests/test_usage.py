from mistral_magic.api.types import Usage
from mistral_magic.config import Mistral
from mistral_magic.engine.usage import UsageLedger, estimate_cost, format_cost


def test_costs_follow_the_price_table():
    settings = Mistral()
    assert estimate_cost("mistral-large-2407", 1_000_000, 1_000_000, settings.price) == 8.0
    assert estimate_cost("some-unknown-model", 10, 10, settings.price) is None
    assert format_cost(None) == "price unknown"
    assert format_cost(0.001234) == "$0.0012"


def test_ledger_sums_per_model():
    ledger = UsageLedger(Mistral().price)
    ledger.record("mistral-large-2407", Usage(1000, 500, 1500))
    ledger.record("mistral-large-2407", Usage(1000, 500, 1500))
    ledger.record("other", None)
    table = ledger.summary_markdown()
    assert "| mistral-large-2407 | 2 | 2,000 | 1,000 | $0.01 |" in table
    assert "| other | 1 | 0 | 0 | price unknown |" in table
    assert "Total estimated cost: price unknown" in table


def test_settings_read_the_environment(monkeypatch):
    monkeypatch.setenv("MISTRAL_MODEL", "mistral-large-2407")
    monkeypatch.setenv("MISTRAL_API_KEY", "abcdefghijklmnop-secret-9876")
    settings = Mistral()
    assert settings.model == "mistral-large-2407"
    shown = settings.effective()
    assert "abcdefghijklmnop-secret-9876" not in str(shown)
    assert shown["api_key"].startswith("set")


def test_data_jobs_are_tallied_and_batch_jobs_at_their_price():
    ledger = UsageLedger(Mistral().price)
    ledger.record_bulk("mistral-large-2407", 10, 1_000_000, 0)
    ledger.record_bulk("mistral-large-2407", 10, 1_000_000, 0, price_factor=0.5)
    assert ledger.cost("mistral-large-2407") == 2.0
    assert ledger.cost("mistral-large-2407 (batch)") == 1.0
    assert (
        "| mistral-large-2407 (batch) | 10 | 1,000,000 | 0 | $1.00 |" in ledger.summary_markdown()
    )
