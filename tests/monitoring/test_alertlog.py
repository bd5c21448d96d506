"""The alert log on real SQLite files and the real PostgreSQL server."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import create_engine, inspect, text

from modelport.core.clock import FakeClock
from modelport.core.errors import InvalidInputError, StoreError, StoreUnavailableError
from modelport.monitoring import alertlog
from modelport.monitoring.alert_events import AlertEvent
from modelport.monitoring.alert_rules import AlertRule
from modelport.monitoring.alertlog import AlertLog
from modelport.monitoring.alerts import AlertEvaluator, Observation


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'alerts.db'}"
    return str(request.getfixturevalue("pg_url"))


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def log(url: str, clock: FakeClock) -> Iterator[AlertLog]:
    with AlertLog(url, clock=clock) as log:
        log.create()
        yield log


def observe(model: str, errors: int, version: str = "1") -> Observation:
    return Observation(model=model, version=version, window_s=300, requests=100, errors=errors)


@pytest.fixture
def evaluator(clock: FakeClock) -> AlertEvaluator:
    rule = AlertRule(name="errors", kind="error_rate", threshold=0.1, window_s=300)
    return AlertEvaluator([rule], clock)


def test_create_is_idempotent_and_uses_its_own_metadata(url: str) -> None:
    with AlertLog(url) as log:
        log.create()
        log.create()
        assert inspect(log.engine).has_table("mp_alert_events")
    assert set(alertlog.metadata.tables) == {"mp_alert_events"}


def test_concurrent_creates(url: str) -> None:
    logs = [AlertLog(url) for _ in range(4)]
    barrier = threading.Barrier(len(logs))
    errors: list[BaseException] = []

    def create(log: AlertLog) -> None:
        barrier.wait()
        try:
            log.create()
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=create, args=(log,)) for log in logs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for log in logs:
        log.close()
    assert errors == []


def test_record_and_read_back(log: AlertLog, evaluator: AlertEvaluator, clock: FakeClock) -> None:
    fired = evaluator.evaluate([observe("iris", 50)])
    assert log.record(fired) == 1
    clock.advance(120)
    resolved = evaluator.evaluate([observe("iris", 0)])
    assert log.record(resolved) == 1
    assert log.record([]) == 0
    history = log.history()
    assert [r.event for r in history] == [*resolved, *fired]  # newest first, exact round trip
    assert [r.recorded_at for r in history] == [clock.now(), clock.now() - timedelta(seconds=120)]
    assert history[0].id > history[1].id
    assert all(r.event.starts_at.tzinfo is not None for r in history)


def test_firing_is_the_latest_state_per_alert(
    log: AlertLog, evaluator: AlertEvaluator, clock: FakeClock
) -> None:
    log.record(evaluator.evaluate([observe("iris", 50)]))
    clock.advance(60)
    log.record(evaluator.evaluate([observe("iris", 50), observe("wine", 50)]))
    assert [(e.model, e.status) for e in log.firing()] == [("iris", "firing"), ("wine", "firing")]
    clock.advance(60)
    log.record(evaluator.evaluate([observe("iris", 0), observe("wine", 50)]))
    assert [e.model for e in log.firing()] == ["wine"]
    clock.advance(60)
    log.record(evaluator.evaluate([observe("iris", 50), observe("wine", 50)]))
    assert [e.model for e in log.firing()] == ["wine", "iris"]  # oldest first
    assert {e.fingerprint for e in log.firing()} == {a.fingerprint for a in evaluator.firing()}


def test_history_filters(log: AlertLog, evaluator: AlertEvaluator, clock: FakeClock) -> None:
    start = clock.now()
    for i in range(6):
        log.record(evaluator.evaluate([observe("iris", 50 * (i % 2)), observe("wine", 50)]))
        clock.advance(60)
    # wine fires at t=0; iris fires at t=60, 180, 300 and resolves at t=120, 240
    assert len(log.history()) == 6
    statuses = [r.event.status for r in log.history(model="iris")]
    assert statuses == ["firing", "resolved", "firing", "resolved", "firing"]
    assert [r.event.model for r in log.history(model="wine")] == ["wine"]
    assert len(log.history(since=start + timedelta(seconds=120))) == 4
    assert len(log.history(limit=1)) == 1
    assert log.history(model="nope") == []


def test_history_arguments_are_checked(log: AlertLog) -> None:
    with pytest.raises(InvalidInputError, match="limit"):
        log.history(limit=0)
    with pytest.raises(InvalidInputError, match="time zone"):
        log.history(since=datetime(2026, 1, 1))


def test_times_are_stored_in_utc(log: AlertLog, evaluator: AlertEvaluator) -> None:
    (event,) = evaluator.evaluate([observe("iris", 50)])
    plus2 = timezone(timedelta(hours=2))
    shifted = dataclasses.replace(event, starts_at=event.starts_at.astimezone(plus2))
    log.record([shifted])
    (back,) = log.firing()
    assert back.starts_at == event.starts_at
    assert back.starts_at.tzinfo == UTC


def test_a_shared_engine_is_not_disposed(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'shared.db'}")
    try:
        with AlertLog(engine) as log:
            log.create()
        with engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM mp_alert_events")).scalar() == 0
    finally:
        engine.dispose()


def test_in_memory_sqlite() -> None:
    with AlertLog("sqlite://") as log:
        log.create()
        assert log.firing() == []


def test_recording_before_create_says_what_to_do(tmp_path: Path, evaluator: AlertEvaluator) -> None:
    with (
        AlertLog(f"sqlite:///{tmp_path / 'empty.db'}") as log,
        pytest.raises(StoreError, match=r"recording alert events failed .*run create\(\) first"),
    ):
        log.record(evaluator.evaluate([observe("iris", 50)]))


@pytest.mark.parametrize("bad", ["mysql://u@h/db", "not a url", "postgresql+asyncpg://h/db"])
def test_unsupported_urls(bad: str) -> None:
    with pytest.raises(InvalidInputError, match="alert log URL"):
        AlertLog(bad)


@pytest.mark.postgres
def test_unreachable_postgres_hides_the_password() -> None:
    with (
        AlertLog("postgresql://u:hunter2@127.0.0.1:1/db") as log,
        pytest.raises(
            StoreUnavailableError,
            match=r"alert log at postgresql\+psycopg://u:\*\*\*@127\.0\.0\.1:1/db",
        ) as info,
    ):
        log.create()
    assert "hunter2" not in str(info.value)


def test_events_round_trip_every_field(log: AlertLog, clock: FakeClock) -> None:
    event = AlertEvent(
        rule="d",
        kind="drift",
        severity="critical",
        status="resolved",
        model="iris",
        version="3",
        feature='petal "len"',
        statistic="ks",
        value=None,
        threshold=0.25,
        window_s=3600,
        starts_at=clock.now() - timedelta(hours=1),
        ends_at=clock.now(),
        fingerprint="0123456789abcdef",
        summary="resolved (rule removed): …",
    )
    log.record([event])
    (record,) = log.history()
    assert record.event == event
    assert log.firing() == []
