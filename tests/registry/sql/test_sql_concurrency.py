"""Concurrent writers on one database: separate processes (spawn) and threads, both backends.

Four spawned worker processes are started once for the module; each task runs in its own worker,
opens its own store, and waits on a shared barrier so that all four write at the same moment.
"""

from __future__ import annotations

import multiprocessing
import threading
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from modelport.core.digest import Manifest, ManifestEntry, sha256_bytes
from modelport.core.model import NewModelVersion
from modelport.registry.sql import SqlMetadataStore
from modelport.registry.sql.engine import make_engine

PROCESSES = 4
PER_PROCESS = 10
MOVES = 5
TIMEOUT_S = 120

_barrier: Any = None  # set in each worker by _init_worker


def _init_worker(barrier: Any) -> None:
    global _barrier
    _barrier = barrier


@pytest.fixture(scope="module")
def workers() -> Iterator[ProcessPoolExecutor]:
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(PROCESSES, timeout=TIMEOUT_S)
    with ProcessPoolExecutor(
        PROCESSES, mp_context=ctx, initializer=_init_worker, initargs=(barrier,)
    ) as pool:
        yield pool


def run_at_once(pool: ProcessPoolExecutor, task: Any, url: str) -> dict[int, list[int]]:
    """``task(url, worker)`` in PROCESSES worker processes, released together by the barrier."""
    futures = {w: pool.submit(task, url, w) for w in range(PROCESSES)}
    return {w: future.result(timeout=TIMEOUT_S) for w, future in futures.items()}


def new_version(seed: str, actor: str = "ann") -> NewModelVersion:
    entry = ManifestEntry("model.onnx", sha256_bytes(seed.encode()), len(seed))
    return NewModelVersion(
        name="fraud", format="onnx", manifest=Manifest.of([entry]), created_by=actor
    )


# -- tasks: module-level so the spawned workers can import them ---------------------------------


def _register_many(url: str, worker: int) -> tuple[int, list[int]]:
    with SqlMetadataStore.open(url) as store:
        _barrier.wait()
        numbers = [
            store.add_version(new_version(f"{worker}-{i}", actor=f"w{worker}")).number
            for i in range(PER_PROCESS)
        ]
    return multiprocessing.current_process().pid or 0, numbers


def _move_alias(url: str, worker: int) -> tuple[int, list[int]]:
    targets = [worker * MOVES + i + 1 for i in range(MOVES)]  # disjoint: every move is real
    with SqlMetadataStore.open(url) as store:
        _barrier.wait()
        for number in targets:
            store.set_alias("fraud", "champion", number, actor=f"w{worker}", reason=str(number))
    return multiprocessing.current_process().pid or 0, targets


# -- tests --------------------------------------------------------------------------------------


def test_processes_registering_at_once_get_unique_consecutive_numbers(
    db_url: str, workers: ProcessPoolExecutor
) -> None:
    SqlMetadataStore.open(db_url).close()  # migrate first: this test is about registration
    results = run_at_once(workers, _register_many, db_url)

    assert len({pid for pid, _ in results.values()}) == PROCESSES  # really separate processes
    every = sorted(n for _, numbers in results.values() for n in numbers)
    assert every == list(range(1, PROCESSES * PER_PROCESS + 1))
    with SqlMetadataStore.open(db_url) as store:
        versions = store.list_versions("fraud")
        audit = store.query_audit(model="fraud", action="version.register")
    assert [v.number for v in versions] == every
    by_actor: dict[str, list[int]] = {}
    for v in versions:
        by_actor.setdefault(v.created_by, []).append(v.number)
    assert by_actor == {f"w{w}": numbers for w, (_, numbers) in results.items()}
    assert sorted(e.version or 0 for e in audit) == every


def test_processes_moving_an_alias_keep_a_consistent_history(
    db_url: str, workers: ProcessPoolExecutor
) -> None:
    total = PROCESSES * MOVES
    with SqlMetadataStore.open(db_url) as store:
        for i in range(total):
            store.add_version(new_version(str(i)))
    results = run_at_once(workers, _move_alias, db_url)

    with SqlMetadataStore.open(db_url) as store:
        history = store.alias_history("fraud", "champion")
        final = store.resolve_alias("fraud", "champion")
        audit = store.query_audit(model="fraud", action="alias.set")
    assert len({pid for pid, _ in results.values()}) == PROCESSES
    assert [m.seq for m in history] == list(range(1, total + 1))
    assert sorted(m.to_version or 0 for m in history) == list(range(1, total + 1))
    previous = None
    for move in history:
        assert move.from_version == previous
        assert move.reason == str(move.to_version)
        previous = move.to_version
    assert final == history[-1].to_version
    for worker, (_, targets) in results.items():
        mine = [m.to_version for m in history if m.actor == f"w{worker}"]
        assert mine == targets  # each process's moves land in the order it made them
    assert [(e.details["from_version"], e.version) for e in audit] == [
        (m.from_version, m.to_version) for m in history
    ]


def test_threads_sharing_one_store_get_unique_numbers(db_url: str) -> None:
    with SqlMetadataStore.open(db_url) as store, ThreadPoolExecutor(8) as pool:
        numbers = list(pool.map(lambda i: store.add_version(new_version(str(i))).number, range(40)))
        assert sorted(numbers) == list(range(1, 41))
        assert store.get_model("fraud").latest_version == 40


def _open_together(url: str, count: int) -> tuple[list[str], list[BaseException]]:
    """``count`` threads open ``url`` at the same moment; their journal modes and errors."""
    barrier = threading.Barrier(count)
    errors: list[BaseException] = []
    modes: list[str] = []

    def open_it() -> None:
        try:
            engine = make_engine(url)
            barrier.wait(timeout=10)
            with engine.connect() as conn:
                modes.append(str(conn.exec_driver_sql("PRAGMA journal_mode").scalar()))
            engine.dispose()
        except BaseException as exc:  # reported by the caller, with its round
            errors.append(exc)

    threads = [threading.Thread(target=open_it) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    return modes, errors


def test_connections_opening_a_new_sqlite_file_together_all_get_wal(tmp_path: Path) -> None:
    """Switching a new file to WAL fails at once (no busy handler) when another connection
    holds its lock: without the retry about one round in twenty failed here."""
    for round_ in range(20):
        modes, errors = _open_together(f"sqlite:///{tmp_path / f'registry-{round_}.db'}", 4)
        assert not errors, f"round {round_}: {errors[0]!r}"
        assert modes == ["wal"] * 4
