"""Schema migrations: shipped in the package, matching the tables, idempotent, safe to race."""

from __future__ import annotations

import multiprocessing
import sqlite3
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, text

from modelport.core.digest import Manifest, ManifestEntry, sha256_bytes
from modelport.core.errors import StoreError
from modelport.core.model import NewModelVersion
from modelport.registry.sql import SqlMetadataStore, make_engine, upgrade
from modelport.registry.sql.engine import read_only
from modelport.registry.sql.migrate import (
    MIGRATIONS_DIR,
    alembic_config,
    current_revision,
    head_revision,
)
from modelport.registry.sql.tables import VERSION_TABLE, metadata

PROCESSES = 4
TIMEOUT_S = 120


def new_version(seed: str) -> NewModelVersion:
    entry = ManifestEntry("model.onnx", sha256_bytes(seed.encode()), 1)
    return NewModelVersion(name="fraud", format="onnx", manifest=Manifest.of([entry]))


def version_rows(engine: Engine) -> list[str]:
    with engine.connect() as conn:
        return list(conn.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).scalars())


def test_migrations_ship_inside_the_package() -> None:
    package = Path(__import__("modelport").__file__).parent
    assert MIGRATIONS_DIR.is_relative_to(package)
    for name in (
        "env.py",
        "script.py.mako",
        "versions/0001_initial.py",
        "versions/0002_variants.py",
        "versions/0003_gate_reports.py",
        "versions/0004_deployments.py",
        "versions/0005_routes.py",
        "versions/0006_api_keys.py",
    ):
        assert (MIGRATIONS_DIR / name).is_file()
    assert head_revision() == "0006"


def test_upgrade_builds_exactly_the_declared_schema(engine: Engine) -> None:
    with engine.connect() as conn:
        assert current_revision(conn) is None
    upgrade(engine)
    with engine.connect() as conn:
        assert current_revision(conn) == head_revision()
        ctx = MigrationContext.configure(
            conn,
            opts={
                "compare_type": True,
                "include_name": lambda name, kind, _parent: name != VERSION_TABLE,
            },
        )
        assert compare_metadata(ctx, metadata) == []


def test_upgrade_is_idempotent_and_keeps_data(db_url: str, engine: Engine) -> None:
    with SqlMetadataStore.open(db_url) as store:
        store.add_version(new_version("a"))
    upgrade(engine)
    upgrade(engine)
    with SqlMetadataStore.open(db_url) as store:
        assert [v.number for v in store.list_versions("fraud")] == [1]
    assert version_rows(engine) == [head_revision()]


def test_downgrade_then_upgrade_round_trips(engine: Engine) -> None:
    upgrade(engine)
    with engine.begin() as conn:
        command.downgrade(alembic_config(conn), "base")
    with engine.connect() as conn:
        assert current_revision(conn) is None
        tables = set(metadata.tables) & set(engine.dialect.get_table_names(conn))
    assert tables == set()
    upgrade(engine)
    assert version_rows(engine) == [head_revision()]


def test_database_from_a_newer_modelport_is_refused(db_url: str, engine: Engine) -> None:
    upgrade(engine)
    with engine.begin() as conn:
        conn.execute(text(f"UPDATE {VERSION_TABLE} SET version_num = '9999'"))
    with pytest.raises(StoreError, match="upgrade modelport"):
        SqlMetadataStore.open(db_url)


_barrier: Any = None  # set in each worker by _init_worker


def _init_worker(barrier: Any) -> None:
    global _barrier
    _barrier = barrier


def _open_and_register(url: str, worker: int) -> tuple[int, int]:
    _barrier.wait()  # everyone opens the fresh database at the same moment
    with SqlMetadataStore.open(url) as store:
        number = store.add_version(new_version(str(worker))).number
    return multiprocessing.current_process().pid or 0, number


@pytest.fixture(scope="module")
def workers() -> Iterator[ProcessPoolExecutor]:
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(PROCESSES, timeout=TIMEOUT_S)
    with ProcessPoolExecutor(
        PROCESSES, mp_context=ctx, initializer=_init_worker, initargs=(barrier,)
    ) as pool:
        yield pool


def test_processes_opening_a_fresh_database_at_once(
    db_url: str, engine: Engine, workers: ProcessPoolExecutor
) -> None:
    futures = [workers.submit(_open_and_register, db_url, w) for w in range(PROCESSES)]
    results = [future.result(timeout=TIMEOUT_S) for future in futures]

    assert len({pid for pid, _ in results}) == PROCESSES
    assert sorted(number for _, number in results) == list(range(1, PROCESSES + 1))
    assert version_rows(engine) == [head_revision()]


def test_sqlite_connections_are_configured(tmp_path: Path) -> None:
    path = tmp_path / "registry.db"
    engine = make_engine(f"sqlite:///{path}")
    try:
        upgrade(engine)
        with engine.connect() as conn:
            pragmas = {
                name: conn.exec_driver_sql(f"PRAGMA {name}").scalar()
                for name in ("journal_mode", "foreign_keys", "busy_timeout")
            }
        assert pragmas == {"journal_mode": "wal", "foreign_keys": 1, "busy_timeout": 30000}

        other = sqlite3.connect(path, timeout=0, isolation_level=None)
        try:
            with engine.begin():  # a write transaction holds the write lock from its BEGIN
                with pytest.raises(sqlite3.OperationalError, match="locked"):
                    other.execute("BEGIN IMMEDIATE")
                with read_only(engine).connect() as reader:  # readers are never blocked
                    assert reader.exec_driver_sql("SELECT count(*) FROM models").scalar() == 0
        finally:
            other.close()
    finally:
        engine.dispose()
