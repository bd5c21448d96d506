"""Fixtures of the SQL store tests: every test runs on SQLite and on the real PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from modelport.core.clock import FakeClock
from modelport.registry.sql.engine import make_engine
from modelport.registry.sql.store import SqlMetadataStore


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'registry.db'}"
    return str(request.getfixturevalue("pg_url"))


@pytest.fixture
def clock() -> FakeClock:
    """Test modules that need another start time define their own ``clock``."""
    return FakeClock()


@pytest.fixture
def store(db_url: str, clock: FakeClock) -> Iterator[SqlMetadataStore]:
    with SqlMetadataStore.open(db_url, clock=clock) as opened:
        yield opened


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    made = make_engine(db_url)
    yield made
    made.dispose()
