"""Documents generated from the code and committed (docs/openapi.json, docs/asyncapi.json), so
that a change to an interface shows in review: rendered one way, written or checked one way."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def render(document: dict[str, Any]) -> str:
    """Keys sorted, two spaces, Chinese as it is: stable from one run to the next."""
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def write_or_check(path: Path, document: dict[str, Any], command: str, argv: list[str]) -> int:
    """Write the document; with ``--check`` in argv, say whether the committed one is current
    (exit 1 when not) and write nothing."""
    text = render(document)
    if "--check" in argv:
        current = path.exists() and path.read_text(encoding="utf-8") == text
        print(f"{path}: {'current' if current else f'out of date; run {command}'}")
        return 0 if current else 1
    path.write_text(text, encoding="utf-8")
    print(f"wrote {path}")
    return 0
