"""The ``Traffic`` port over the registry: the next table per action (pure), idempotent
publishes, re-reading after losing a race and giving up after losing every one, and concurrent
controllers on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from modelport.core.errors import ConflictError, InvalidInputError
from modelport.core.model import AuditEvent
from modelport.core.rollouts import RouteRecord
from modelport.registry.sql import SqlMetadataStore
from modelport.rollout.ports import TrafficAction
from modelport.rollout.state import SetWeights, StartShadow, StopShadow
from modelport.serving.router import Router, RouteTable
from modelport.serving.traffic import ATTEMPTS, RegistryTraffic, next_table, unchanged

THREADS = 6
TIMEOUT_S = 60


def test_set_weights_routes_exactly_baseline_and_candidate() -> None:
    table = next_table(None, "ep", SetWeights(90, 10), (3, 4))
    assert table is not None
    assert table.routes == (("3", 90), ("4", 10))
    assert table.generation == 1
    assert table.shadow is None
    full = next_table(table, "ep", SetWeights(0, 100), (3, 4))
    assert full is not None
    assert full.routes == (("4", 100),)
    assert full.generation == 2
    sticky = next_table(full, "ep", SetWeights(50, 50, "header:x-user-id"), (3, 4))
    assert sticky is not None
    assert sticky.sticky == "header:x-user-id"


def test_shadows_start_on_the_current_routes_and_stop_without_touching_them() -> None:
    base = RouteTable("ep", (("3", 100),), generation=4, salt="s")
    shadowed = next_table(base, "ep", StartShadow(0.25, 300.0), (3, 4))
    assert shadowed is not None
    assert shadowed.routes == (("3", 100),)
    assert shadowed.shadow == ("4", 0.25)
    assert shadowed.shadow_timeout_ms == 300.0
    kept = next_table(shadowed, "ep", SetWeights(100, 0), (3, 4))
    assert kept is not None
    assert kept.shadow == ("4", 0.25)  # weights keep the shadow
    gone = next_table(kept, "ep", SetWeights(80, 20), (3, 4))
    assert gone is not None
    assert gone.shadow is None  # the shadow version now takes traffic
    stopped = next_table(shadowed, "ep", StopShadow(), (3, 4))
    assert stopped is not None
    assert stopped.routes == (("3", 100),)
    assert stopped.shadow is None
    assert stopped.salt == "s"
    assert next_table(None, "ep", StopShadow(), (3, 4)) is None
    first = next_table(None, "ep", StartShadow(0.1, 1000.0), (3, 4))
    assert first is not None
    assert first.routes == (("3", 100),)


def test_actions_for_a_missing_candidate_are_refused() -> None:
    with pytest.raises(InvalidInputError, match="has none"):
        next_table(None, "ep", SetWeights(50, 50), (3, None))
    with pytest.raises(InvalidInputError, match="has none"):
        next_table(None, "ep", StartShadow(0.1, 1000.0), (3, None))


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqlMetadataStore]:
    with SqlMetadataStore.open(f"sqlite:///{tmp_path / 'registry.db'}") as opened:
        yield opened


def test_apply_publishes_once_and_a_repeat_writes_nothing(store: SqlMetadataStore) -> None:
    traffic = RegistryTraffic(store, actor="controller")
    traffic.apply("ep", SetWeights(90, 10), (3, 4))
    traffic.apply("ep", SetWeights(90, 10), (3, 4))  # after a crash: re-applied
    traffic.apply("ep", StopShadow(), (3, 4))  # no shadow: nothing to stop
    record = store.get_routes("ep")
    assert record is not None
    assert record.generation == 1
    assert len(store.query_audit(action="routes.publish")) == 1
    traffic.apply("ep", SetWeights(0, 100), (3, 4))
    current = traffic.current("ep")
    assert current is not None
    assert current.routes == (("4", 100),)
    assert current.generation == 2


def test_apply_rereads_after_another_writer_published(store: SqlMetadataStore) -> None:
    traffic = RegistryTraffic(store)
    traffic.apply("ep", SetWeights(100, 0), (3, 4))

    # another controller publishes right before this one's first attempt
    raced = {"done": False}
    publish = store.publish_routes

    def publish_after_a_rival(*args: object, **kw: object) -> object:
        if not raced["done"]:
            raced["done"] = True
            rival = RouteTable("ep", (("3", 95), ("4", 5)), generation=2)
            publish("ep", rival.to_dict(), 1, "rival")
        return publish(*args, **kw)  # type: ignore[arg-type]

    store.publish_routes = publish_after_a_rival  # type: ignore[method-assign]
    traffic.apply("ep", SetWeights(50, 50), (3, 4))
    record = store.get_routes("ep")
    assert record is not None
    assert record.generation == 3
    assert record.table["routes"] == [["3", 50], ["4", 50]]


# -- more decisions -------------------------------------------------------------------------------
STARTS = [
    None,
    RouteTable("ep", (("3", 100),), generation=1),
    RouteTable("ep", (("3", 100),), ("4", 0.2), generation=2, salt="s", shadow_timeout_ms=300.0),
    RouteTable("ep", (("3", 90), ("4", 10)), sticky="header:X-User-ID", generation=3),
    RouteTable("ep", (("4", 100),), ("5", 0.1), generation=9),
]
ACTIONS: list[TrafficAction] = [
    SetWeights(100, 0),
    SetWeights(90, 10, "header:X-User-ID"),
    SetWeights(0, 100),
    StartShadow(0.5, 200.0),
    StopShadow(),
]


def test_set_weights_sets_stickiness_and_keeps_salt_shadow_and_timeout() -> None:
    current = RouteTable("ep", (("3", 50), ("4", 50)), ("5", 0.2), "header:X", 3, "s", 250.0)
    table = next_table(current, "ep", SetWeights(90, 10), (3, 4))
    assert table == RouteTable("ep", (("3", 90), ("4", 10)), ("5", 0.2), None, 4, "s", 250.0)


def test_a_baseline_that_is_also_the_candidate_gets_both_weights() -> None:
    table = next_table(None, "ep", SetWeights(90, 10), (3, 3))
    assert table is not None
    assert table.routes == (("3", 100),)


def test_weights_that_route_nothing_are_refused() -> None:
    with pytest.raises(InvalidInputError, match=r"endpoint 'ep'.*no version taking traffic"):
        next_table(None, "ep", SetWeights(0, 0), (3, 4))


def test_a_shadow_of_a_version_taking_traffic_is_refused() -> None:
    current = RouteTable("ep", (("3", 50), ("4", 50)), generation=1)
    with pytest.raises(InvalidInputError, match=r"endpoint 'ep'.*both a primary route"):
        next_table(current, "ep", StartShadow(0.1, 100.0), (3, 4))


def test_unchanged_ignores_the_generation_only() -> None:
    table = RouteTable("ep", (("3", 100),), generation=1)
    assert unchanged(table, None)
    assert unchanged(table, replace(table, generation=2))
    assert not unchanged(None, table)
    assert not unchanged(table, replace(table, salt="new"))
    assert not unchanged(table, replace(table, shadow_timeout_ms=5.0))


def test_every_action_is_idempotent_from_every_table() -> None:
    tried = 0
    for start in STARTS:
        for action in ACTIONS:
            try:
                first = next_table(start, "ep", action, (3, 4))
            except InvalidInputError:  # a shadow of a version taking traffic
                assert isinstance(action, StartShadow)
                continue
            tried += 1
            if first is not None:
                assert first.generation == (0 if start is None else start.generation) + 1
            after = first if first is not None else start
            assert unchanged(after, next_table(after, "ep", action, (3, 4))), (start, action)
    assert tried == len(STARTS) * len(ACTIONS) - 2


# -- the port over a real registry ----------------------------------------------------------------
@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'shared.db'}"
    return str(request.getfixturevalue("pg_url"))


@pytest.fixture
def opened(url: str) -> Iterator[SqlMetadataStore]:
    with SqlMetadataStore.open(url) as store:
        yield store


def publishes(store: SqlMetadataStore) -> list[AuditEvent]:
    return store.query_audit(action="routes.publish")


def test_a_rollout_through_the_port_publishes_each_change_once(
    opened: SqlMetadataStore,
) -> None:
    traffic = RegistryTraffic(opened)
    router = Router(RouteTable.single("ep", "3"))  # a replica, before anything is published
    steps: list[tuple[TrafficAction, dict[str, Any]]] = [
        (StopShadow(), {}),  # a new rollout: nothing to stop yet
        (StartShadow(0.2, 500.0), {"routes": [["3", 100]], "shadow": ["4", 0.2]}),
        (StopShadow(), {"routes": [["3", 100]], "shadow": None}),
        (SetWeights(90, 10), {"routes": [["3", 90], ["4", 10]], "shadow": None}),
        (SetWeights(50, 50), {"routes": [["3", 50], ["4", 50]], "shadow": None}),
        (SetWeights(0, 100), {"routes": [["4", 100]], "shadow": None}),
    ]
    generation = 0
    for action, expected in steps:
        for _ in range(2):  # the second apply is a re-apply after a crash
            traffic.apply("ep", action, (3, 4))
        record = opened.get_routes("ep")
        if not expected:
            assert record is None
            continue
        generation += 1
        assert record is not None
        assert record.generation == generation
        assert {k: record.table[k] for k in expected} == expected
        assert record.table["shadow_timeout_ms"] == 500.0
        assert router.swap(RouteTable.from_dict("ep", record.table, record.generation))
    assert router.choose().primary == "4"
    events = publishes(opened)
    assert [e.details["generation"] for e in events] == list(range(1, generation + 1))
    assert {e.actor for e in events} == {"controller"}


def test_concurrent_controllers_publish_one_change_once(url: str, opened: SqlMetadataStore) -> None:
    with SqlMetadataStore.open(url) as other:  # a second controller process
        ports = [RegistryTraffic(opened, actor="c1"), RegistryTraffic(other, actor="c2")]
        barrier = threading.Barrier(THREADS, timeout=TIMEOUT_S)

        def apply(i: int) -> None:
            barrier.wait()
            ports[i % 2].apply("ep", SetWeights(90, 10), (3, 4))
            ports[i % 2].apply("ep", StartShadow(0.1, 100.0), (3, 5))

        with ThreadPoolExecutor(THREADS) as pool:
            for future in [pool.submit(apply, i) for i in range(THREADS)]:
                future.result(timeout=TIMEOUT_S)
    record = opened.get_routes("ep")
    assert record is not None
    assert record.generation == 2, publishes(opened)
    assert record.table["routes"] == [["3", 90], ["4", 10]]
    assert record.table["shadow"] == ["5", 0.1]
    assert len(publishes(opened)) == 2


def test_one_port_is_safe_from_many_threads(opened: SqlMetadataStore) -> None:
    traffic = RegistryTraffic(opened)

    def roll(i: int) -> None:
        for candidate in (10, 50, 100):
            traffic.apply(f"ep-{i}", SetWeights(100 - candidate, candidate), (3, 4))

    with ThreadPoolExecutor(THREADS) as pool:
        for future in [pool.submit(roll, i) for i in range(THREADS)]:
            future.result(timeout=TIMEOUT_S)
    records = opened.list_routes()
    assert [(r.endpoint, r.generation) for r in records] == [(f"ep-{i}", 3) for i in range(THREADS)]
    assert all(r.table["routes"] == [["4", 100]] for r in records)


class RivalFirst(SqlMetadataStore):
    """A real store where another writer publishes right before each of this one's publishes."""

    def publish_routes(
        self, endpoint: str, table: Mapping[str, Any], expected_generation: int, actor: str
    ) -> RouteRecord:
        current = self.get_routes(endpoint)
        now = 0 if current is None else current.generation
        super().publish_routes(endpoint, {"routes": [[str(now), 100]]}, now, "rival")
        return super().publish_routes(endpoint, table, expected_generation, actor)


def test_the_port_gives_up_after_losing_every_race(tmp_path: Path) -> None:
    with RivalFirst.open(f"sqlite:///{tmp_path / 'registry.db'}") as store:
        with pytest.raises(ConflictError, match=f"endpoint 'ep' changed under each of {ATTEMPTS}"):
            RegistryTraffic(store).apply("ep", SetWeights(90, 10), (3, 4))
        assert [e.actor for e in publishes(store)] == ["rival"] * ATTEMPTS


def test_a_corrupt_stored_table_is_reported_not_overwritten(store: SqlMetadataStore) -> None:
    store.publish_routes("ep", {"routes": [["3", 90]]}, 0, "someone")
    with pytest.raises(InvalidInputError, match=r"endpoint 'ep'.*add up to 90"):
        RegistryTraffic(store).apply("ep", SetWeights(100, 0), (3, 4))
    record = store.get_routes("ep")
    assert record is not None
    assert record.generation == 1
