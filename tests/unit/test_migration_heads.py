"""A service at head skips Alembic on start (shared.db.migrate): the heads it reads from the
migration files' lines are the heads Alembic itself finds, for every service."""

from __future__ import annotations

import pytest
from alembic.script import ScriptDirectory

from shared.db import alembic_config, head_revisions
from tools.stack import SERVICES


@pytest.mark.parametrize("service", SERVICES)
def test_the_heads_read_from_the_files_are_alembics(service: str) -> None:
    scripts = ScriptDirectory.from_config(alembic_config(service, "postgresql+asyncpg://x@localhost/y"))
    assert head_revisions(service) == set(scripts.get_heads()) != set()
