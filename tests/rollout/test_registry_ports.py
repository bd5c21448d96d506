"""The rollout controller's ports over a real SQLite registry: ``RegistryAliases`` moves an
alias with its history row and writes nothing for a move it already made; the controller,
acting through ``RegistryAliases`` and ``serving.traffic.RegistryTraffic``, promotes a canary
and re-applies an outbox left by a crash without a second history row or route generation."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from tests.rollout.controller_fakes import T0, FakeGates, FakeWindows

from modelport.core.clock import FakeClock
from modelport.core.deployment import parse_spec
from modelport.core.digest import Manifest, ManifestEntry, sha256_bytes
from modelport.core.errors import (
    InvalidInputError,
    InvalidNameError,
    ModelNotFoundError,
    VersionNotFoundError,
)
from modelport.core.model import NewModelVersion
from modelport.core.refs import ModelRef
from modelport.registry.artifacts.local import LocalArtifactStore
from modelport.registry.service import RegistryService
from modelport.registry.sql import SqlMetadataStore
from modelport.rollout import Aliases, Controller, VersionWindow
from modelport.rollout.registry_ports import RegistryAliases
from modelport.serving.traffic import RegistryTraffic

CANARY = (
    "endpoint: fraud\nbaseline: fraud@champion\ncandidate: fraud:4\n"
    "strategy: {kind: canary, steps: [10, 50, 100], step_interval: 5m}\n"
)
BASE = VersionWindow(requests=5000, errors=25, p95_ms=80.0)
GOOD = {3: BASE, 4: VersionWindow(requests=500, errors=2, p95_ms=85.0)}
THREADS = 6
TIMEOUT_S = 60


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0)


@pytest.fixture
def store(tmp_path: Path, clock: FakeClock) -> Iterator[SqlMetadataStore]:
    """A registry with ``fraud`` versions 1 to 4 and ``fraud@champion`` at 3 (set by ann)."""
    with SqlMetadataStore.open(f"sqlite:///{tmp_path / 'registry.db'}", clock) as opened:
        for seed in "abcd":
            entry = ManifestEntry("model.onnx", sha256_bytes(seed.encode()), 1)
            new = NewModelVersion(name="fraud", format="onnx", manifest=Manifest.of([entry]))
            opened.add_version(new)
        opened.set_alias("fraud", "champion", 3, "ann", "first champion")
        yield opened


def moves(store: SqlMetadataStore) -> list[tuple[int | None, int | None, str, str]]:
    return [
        (m.from_version, m.to_version, m.actor, m.reason)
        for m in store.alias_history("fraud", "champion")
    ]


def test_a_move_writes_its_history_row_and_audit_event_as_the_actor(
    store: SqlMetadataStore,
) -> None:
    aliases: Aliases = RegistryAliases(store, actor="rollout-ctl")
    aliases.move("fraud", "champion", 4, "canary passed; promoting")
    assert store.resolve_alias("fraud", "champion") == 4
    assert moves(store)[-1] == (3, 4, "rollout-ctl", "canary passed; promoting")
    (event,) = store.query_audit(action="alias.set", actor="rollout-ctl")
    assert (event.object_name, event.version) == ("fraud", 4)
    assert event.details["from_version"] == 3


def test_a_move_to_where_the_alias_points_writes_nothing(store: SqlMetadataStore) -> None:
    aliases = RegistryAliases(store)
    aliases.move("fraud", "champion", 3, "re-applied after a crash")
    aliases.move("fraud", "champion", 4, "promoted")
    aliases.move("fraud", "champion", 4, "re-applied after a crash")
    assert moves(store) == [(None, 3, "ann", "first champion"), (3, 4, "controller", "promoted")]
    assert len(store.query_audit(action="alias.set")) == 2


def test_a_new_alias_is_created_with_its_first_row(store: SqlMetadataStore) -> None:
    RegistryAliases(store).move("fraud", "staging", 2, "blue-green switch")
    assert store.resolve_alias("fraud", "staging") == 2
    history = store.alias_history("fraud", "staging")
    assert [(m.from_version, m.to_version) for m in history] == [(None, 2)]


def test_moves_from_many_threads_to_one_version_write_one_row(store: SqlMetadataStore) -> None:
    aliases = RegistryAliases(store)
    barrier = threading.Barrier(THREADS, timeout=TIMEOUT_S)

    def move(_: int) -> None:
        barrier.wait()
        aliases.move("fraud", "champion", 4, "promoted")

    with ThreadPoolExecutor(THREADS) as pool:
        for future in [pool.submit(move, i) for i in range(THREADS)]:
            future.result(timeout=TIMEOUT_S)
    assert [m[:2] for m in moves(store)] == [(None, 3), (3, 4)]


@pytest.mark.parametrize(
    ("model", "alias", "version", "error"),
    [
        ("fraud", "champion", 9, VersionNotFoundError),
        ("nope", "champion", 1, ModelNotFoundError),
        ("../fraud", "champion", 1, InvalidNameError),
        ("fraud", "9lives", 1, InvalidNameError),
        ("fraud", "champion", "4", InvalidInputError),
    ],
)
def test_bad_moves_are_refused_and_change_nothing(
    store: SqlMetadataStore, model: str, alias: str, version: int, error: type[Exception]
) -> None:
    with pytest.raises(error):
        RegistryAliases(store).move(model, alias, version, "promoted")
    assert store.resolve_alias("fraud", "champion") == 3
    assert len(moves(store)) == 1


def test_a_registry_service_is_used_through_its_store_as_the_ports_actor(
    store: SqlMetadataStore, tmp_path: Path
) -> None:
    service = RegistryService(store, LocalArtifactStore(tmp_path / "blobs"), tmp_path, "dora")
    RegistryAliases(service, actor="controller").move("fraud", "champion", 4, "promoted")
    assert moves(store)[-1] == (3, 4, "controller", "promoted")


# -- the controller through both registry ports ---------------------------------------------------
class CrashOnce:
    """The real port, but the process dies right after its first move (before the controller
    could clear its outbox)."""

    def __init__(self, port: RegistryAliases) -> None:
        self.port, self.crashed = port, False

    def move(self, model: str, alias: str, version: int, reason: str) -> None:
        self.port.move(model, alias, version, reason)
        if not self.crashed:
            self.crashed = True
            raise RuntimeError("the controller process died")


def test_a_canary_promotes_through_the_registry_and_a_reapplied_outbox_changes_nothing(
    store: SqlMetadataStore, clock: FakeClock
) -> None:
    windows, gates = FakeWindows(), FakeGates()
    aliases = CrashOnce(RegistryAliases(store))

    def resolve(ref: ModelRef) -> int:
        if ref.version is not None:
            return ref.version
        assert ref.alias is not None
        return store.resolve_alias(ref.name, ref.alias)

    controller = Controller(
        store, windows, gates, RegistryTraffic(store), aliases, clock, resolve=resolve
    )

    def tick(at: float) -> None:
        clock.advance(at - (clock.now() - T0).total_seconds())
        asyncio.run(controller.tick())

    store.record_deployment(parse_spec(CANARY, "deploy.yaml"), "ann")
    tick(0)
    routes = store.get_routes("fraud")
    assert routes is not None
    assert routes.table["routes"] == [["3", 90], ["4", 10]]
    windows.set(GOOD)
    tick(310)
    tick(620)  # promotes: the routes move, the alias moves, then the process "dies"
    assert aliases.crashed
    latest = store.latest_rollout("fraud")
    assert latest is not None
    assert "outbox" in latest.state  # committed and applied, not yet cleared

    tick(630)  # the outbox is applied again: routes and alias are already there
    latest = store.latest_rollout("fraud")
    assert latest is not None
    assert latest.phase == "promoted"
    assert latest.finished_at is not None
    assert "outbox" not in latest.state
    routes = store.get_routes("fraud")
    assert routes is not None
    assert routes.table["routes"] == [["4", 100]]
    published = store.query_audit(action="routes.publish")
    assert [e.details["generation"] for e in published] == [1, 2, 3, 4]
    assert routes.generation == 4
    assert store.resolve_alias("fraud", "champion") == 4
    _, promoted = moves(store)  # no second row from the re-applied move
    assert promoted[:3] == (3, 4, "controller")
    assert "promoting" in promoted[3]
