"""``import mistral_magic.context`` stays light; token counting never imports mistral_common."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

HEAVY = ("pandas", "numpy", "polars", "mistral_common", "sentencepiece", "IPython")
REPO = Path(__file__).resolve().parents[1]


def loaded_after(code: str) -> dict[str, bool]:
    script = (
        f"{code}\nimport json, sys\nprint(json.dumps({{m: m in sys.modules for m in {HEAVY!r}}}))"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, check=True
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_import_is_light():
    assert not any(loaded_after("import mistral_magic.context").values())


def test_counting_loads_sentencepiece_but_not_mistral_common():
    loaded = loaded_after(
        "from mistral_magic.context import count_request_tokens\n"
        "hi = [{'role': 'user', 'content': 'Hi'}]\n"
        "assert count_request_tokens(hi, 'mistral-large-2407') == 4"
    )
    assert loaded["sentencepiece"]
    assert not loaded["mistral_common"] and not loaded["pandas"] and not loaded["numpy"]


def test_describing_builtins_imports_no_data_libraries():
    loaded = loaded_after(
        "from mistral_magic.context import describe, Redactor\n"
        "describe({'a': [1, 2]}, 'x'); Redactor(['secret-value-1']).redact('text')"
    )
    assert not any(loaded.values())
