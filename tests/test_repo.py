"""Repository hygiene that CI enforces: lint clean, README commands where they belong."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_ruff_is_clean():
    ruff = shutil.which("ruff", path=str(Path(sys.executable).parent)) or shutil.which("ruff")
    assert ruff, "ruff is part of the test extra"
    result = subprocess.run(
        [ruff, "check", "--output-format", "concise", str(ROOT)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_readme_gives_both_commands_near_the_top():
    lines = (ROOT / "README.md").read_text().splitlines()[:30]
    text = "\n".join(lines)
    assert "**Install and start**" in text and "jupyter lab" in text
    assert "**Install and run the tests**" in text and "pytest" in text


def test_tests_need_nothing_beside_the_repo():
    """A user's clone has nothing beside it: recorded traffic lives in tests/captures."""
    captures = ROOT / "tests" / "captures"
    assert len(list(captures.glob("*.json"))) >= 40 and (captures / "README.md").is_file()
    outside = [
        path.relative_to(ROOT)
        for folder in ("tests", "mistral_magic", "benchmarks", ".ci")
        for path in (ROOT / folder).rglob("*")
        if path.is_file()
        and path.suffix in (".py", "")
        and path != Path(__file__).resolve()
        and "../shared" in path.read_text(errors="replace")
    ]
    assert not outside, f"these files reach outside the repo: {outside}"
