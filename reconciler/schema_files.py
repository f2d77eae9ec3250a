"""The JSON Schemas committed under ``schemas/`` and shipped inside the package.

They are generated from the pydantic models, never edited by hand: ``python -m reconciler.schema_files``
rewrites them, and a test fails when the committed files differ from what the models generate, so an editor's
schema never drifts from what ``reconciler validate`` enforces.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from reconciler.kinds import KINDS, json_schema
from reconciler.plan import PlanFileModel

PACKAGE_DIR = Path(__file__).parent / "schemas"


def plan_schema() -> dict[str, Any]:
    schema = PlanFileModel.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = "https://reconciler.dev/schemas/plan.json"
    return schema


def all_schemas() -> dict[str, dict[str, Any]]:
    """File name -> schema, for every kind and the plan file."""
    out = {f"{kind}.json": json_schema(kind) for kind in KINDS}
    out["plan.json"] = plan_schema()
    return out


def dump(schema: dict[str, Any]) -> str:
    return json.dumps(schema, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def write(directory: Path = PACKAGE_DIR) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, schema in all_schemas().items():
        path = directory / name
        path.write_text(dump(schema), encoding="utf-8")
        written.append(path)
    return written


if __name__ == "__main__":
    for path in write(Path(sys.argv[1]) if len(sys.argv) > 1 else PACKAGE_DIR):
        print(path)
