"""Shared fixtures of the unit tests: the bundled sample jurisdiction, loaded once."""

from __future__ import annotations

import pytest

from shared.reference import DEFAULT_JURISDICTION, Jurisdiction, load_jurisdiction


@pytest.fixture(scope="session")
def ref() -> Jurisdiction:
    return load_jurisdiction(DEFAULT_JURISDICTION)
