"""The cost guard and the prices table without a server: one price lookup for a model's
names (an alias the table does not list is priced as the model its card names), the worst
case from the model's own window, the verdicts of Mistral.session_budget and
Mistral.confirm_above, and instructions found upward from the notebook's folder."""

from __future__ import annotations

from pathlib import Path

from mistral_magic.api.models import ModelCatalog
from mistral_magic.config import Mistral
from mistral_magic.engine.guard import CONFIRM, REFUSE, SEND, check_cost
from mistral_magic.engine.instructions import find_agents_file, load_instructions
from mistral_magic.engine.prepare import WireTarget, prepare
from mistral_magic.prices import PriceTable

TARGET = WireTarget("http://127.0.0.1:1/v1", "mistral")
CATALOG = ModelCatalog.from_payload(
    {
        "data": [
            {
                "id": "codestral-2508",
                "name": "codestral-2508",
                "aliases": ["codestral-next"],  # an alias the prices table does not list
                "max_context_length": 256000,
                "capabilities": {"completion_chat": True, "function_calling": True},
            }
        ]
    }
)


def ask(model: str, settings: Mistral, **params):
    return prepare(
        "Why?",
        model=model,
        target=TARGET,
        settings=settings,
        params=params,
        capabilities=CATALOG.capabilities(model),
    )


def test_an_alias_is_priced_as_the_model_its_card_names():
    table = PriceTable.default()
    assert table.lookup("codestral-next") is None
    found = table.lookup("codestral-next", also=("codestral-2508",))
    assert found is not None and found.model == "codestral-next"
    assert found.rates == table.lookup("codestral-2508").rates
    # Mistral.prices under the asked name wins over the table under another name
    settings = Mistral(prices={"codestral-next": [0, 0]})
    assert settings.price("codestral-next", ("codestral-2508",)) == (0.0, 0.0)
    check = check_cost(ask("codestral-next", Mistral(), max_tokens=100), Mistral())
    assert check.price is not None and check.price.source


def test_without_max_tokens_the_worst_case_fills_the_models_own_window():
    settings = Mistral(max_tokens=0)
    prepared = ask("codestral-2508", settings)
    check = check_cost(prepared, settings)
    assert check.reply_tokens == 256000 - prepared.prompt_tokens


def test_budget_and_confirmation_verdicts():
    settings = Mistral()
    prepared = ask("codestral-2508", settings, max_tokens=1000)
    assert check_cost(prepared, settings).verdict == SEND
    settings.confirm_above = 0.0
    assert check_cost(prepared, settings).verdict == CONFIRM
    settings.session_budget = 1.0
    refused = check_cost(prepared, settings, spent=1.0)
    assert refused.verdict == REFUSE and "Mistral.session_budget" in refused.reason
    unknown = ask("no-such-model", settings, max_tokens=10)
    assert check_cost(unknown, settings).verdict == REFUSE  # a budget cannot hold it


def test_agents_md_is_found_upward_but_not_above_the_root(tmp_path: Path):
    (tmp_path / "AGENTS.md").write_text("Use tabs.")
    deep = tmp_path / "a" / "b"
    deep.mkdir(parents=True)
    assert find_agents_file(deep, root=tmp_path) == tmp_path / "AGENTS.md"
    assert find_agents_file(deep, root=tmp_path / "a") is None
    settings = Mistral(instructions="Be brief.", instructions_max_chars=200)
    found = load_instructions(settings, folder=deep, root=tmp_path)
    assert [i.source for i in found] == ["Mistral.instructions", "AGENTS.md"]


def test_instructions_are_cut_with_a_note(tmp_path: Path):
    (tmp_path / "AGENTS.md").write_text("x" * 100)
    settings = Mistral(instructions_max_chars=10)
    [found] = load_instructions(settings, folder=tmp_path, root=tmp_path)
    assert found.cut and found.text.startswith("x" * 10) and "cut at 10 characters" in found.text


def test_an_agent_tasks_cells_are_in_the_audit_in_the_one_provenance_format():
    """The record the labextension's agent runner writes (provenance.ts: agentRecord) is the
    same format as an Insert's: the audit lists the code it wrote, by its hash, and names the
    step; a cell it only ran (no code hash) is not counted as the model's code."""
    from mistral_magic.engine.audit import AS_INSERTED, EDITED, audit, cells_of
    from mistral_magic.engine.provenance import code_hash
    from mistral_magic.faces.magics import audit_markdown

    def agent(step: int, code: str | None) -> dict:
        record = {
            "version": 1,
            "face": "agent",
            "kind": "agent",
            "question": "Compute y",
            "model": "mistral-large-2407",
            "task": "abc123",
            "step": step,
            "timestamp": "2026-11-30T06:00:00.000Z",
            "inserted": "2026-11-30T06:00:00.000Z",
        }
        if code is not None:
            record["code_sha256"] = code_hash(code)
        return record

    def cell(source: str, record: dict) -> dict:
        meta = {"mistral": record}
        return {"cell_type": "code", "source": source, "metadata": meta, "outputs": []}

    notebook = {
        "cells": [
            cell("x = 1", agent(2, None)),  # the user's, run by the task
            cell("y = x / 2\ny", agent(3, "y = x / 2\ny")),
            cell("z = 3  # changed by hand", agent(4, "z = 3")),
        ]
    }
    report = audit(cells_of(notebook), [])
    assert [(r.position, r.status) for r in report.rows] == [(2, AS_INSERTED), (3, EDITED)]
    table = audit_markdown(report)
    assert "agent · step 3" in table and "Compute y" in table
