"""The api's OpenAPI document, committed as docs/openapi.json so that a change to the HTTP API shows
in review. ``python -m services.api.openapi`` writes it; ``--check`` says whether it is current (a
unit test asks the same)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from shared.documents import write_or_check

from .app import ROUTERS
from .web import http_app

DOCUMENT = Path(__file__).resolve().parents[2] / "docs" / "openapi.json"
COMMAND = "python -m services.api.openapi"


def schema() -> dict[str, Any]:
    return http_app(None, ROUTERS).openapi()


def main(argv: list[str]) -> int:
    return write_or_check(DOCUMENT, schema(), COMMAND, argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
