"""The project's habits, enforced by the same test command CI runs: lint, format, types, layer direction."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent

CHECKS = {
    "ruff lint": [str(BIN / "ruff"), "check", "."],
    "ruff format": [str(BIN / "ruff"), "format", "--check", "."],
    "mypy": [sys.executable, "-m", "mypy"],
    "import layers": [str(BIN / "lint-imports")],
}


@pytest.mark.parametrize("name", CHECKS)
def test_codebase_passes(name: str) -> None:
    done = subprocess.run(CHECKS[name], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"{name} failed:\n{done.stdout[-4000:]}\n{done.stderr[-2000:]}"


def test_committed_schemas_match_the_models() -> None:
    from reconciler.schema_files import PACKAGE_DIR, all_schemas, dump

    stale = [
        name
        for name, schema in all_schemas().items()
        if not (PACKAGE_DIR / name).is_file() or (PACKAGE_DIR / name).read_text(encoding="utf-8") != dump(schema)
    ]
    assert not stale, f"schemas out of date: {stale}; run `python -m reconciler.schema_files`"


def test_schemas_folder_is_the_shipped_one() -> None:
    assert (ROOT / "schemas").resolve() == (ROOT / "reconciler" / "schemas").resolve()
