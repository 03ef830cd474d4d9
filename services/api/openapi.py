"""The api's OpenAPI document, committed as docs/openapi.json so that a change to the HTTP API shows
in review. ``python -m services.api.openapi`` writes it; ``--check`` says whether it is current (a
unit test asks the same)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from .app import ROUTERS
from .web import http_app

DOCUMENT = Path(__file__).resolve().parents[2] / "docs" / "openapi.json"
COMMAND = "python -m services.api.openapi"


def schema() -> dict[str, Any]:
    return http_app(None, ROUTERS).openapi()


def render(document: dict[str, Any]) -> str:
    """Keys sorted, two spaces, Chinese as it is: stable from one run to the next."""
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def main(argv: list[str]) -> int:
    text = render(schema())
    if "--check" in argv:
        current = DOCUMENT.exists() and DOCUMENT.read_text(encoding="utf-8") == text
        print(f"{DOCUMENT}: {'current' if current else f'out of date; run {COMMAND}'}")
        return 0 if current else 1
    DOCUMENT.write_text(text, encoding="utf-8")
    print(f"wrote {DOCUMENT}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
