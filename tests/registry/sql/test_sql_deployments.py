"""Deployments and rollouts in the SQL store, on SQLite and PostgreSQL: spec revisions with the
digest no-op, one unfinished rollout per endpoint, compare-and-swap saves, the event timeline
with its figures, operator commands consumed once, concurrent writers, and the 0004 migration."""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, get_args

import pytest
from alembic import command
from sqlalchemy import Engine, insert, text
from sqlalchemy.exc import IntegrityError as SqlIntegrityError
from tests.registry.sql import together

from modelport.core.clock import FakeClock
from modelport.core.deployment import DeploymentSpec, parse_spec
from modelport.core.errors import (
    ConflictError,
    DeploymentNotFoundError,
    InvalidInputError,
    InvalidNameError,
    NotFoundError,
    RolloutNotFoundError,
)
from modelport.core.rollouts import COMMAND_OPS, NewRolloutEvent, RolloutRecord
from modelport.registry.sql import SqlMetadataStore, upgrade
from modelport.registry.sql.migrate import alembic_config, current_revision, head_revision
from modelport.registry.sql.tables import rollouts
from modelport.rollout import (
    Command,
    Event,
    GatesReported,
    Observation,
    Op,
    Record,
    RolloutState,
    Tick,
    VersionWindow,
    action_to_dict,
    new_rollout,
    step,
)
from modelport.rollout.gates import Check as GateCheck
from modelport.rollout.gates import GateReport

AT = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
HEAD = "endpoint: fraud\nbaseline: fraud@champion\ncandidate: fraud:4\n"
CANARY = HEAD + "strategy: {kind: canary, steps: [10, 50, 100], step_interval: 60s}\n"
BLUE_GREEN = HEAD + "strategy: {kind: blue-green, verify_for: 5m}\n"
BASE = VersionWindow(requests=5000, errors=25, p95_ms=80.0)
GOOD = Observation(BASE, VersionWindow(requests=500, errors=2, p95_ms=85.0))
BAD = Observation(BASE, VersionWindow(requests=500, errors=100, p95_ms=85.0))
THREADS = 4


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(AT)


def spec(text: str = CANARY) -> DeploymentSpec:
    return parse_spec(text, "deploy.yaml")


def state(text: str = CANARY) -> RolloutState:
    return new_rollout(spec(text), baseline_version=3, candidate_version=4, now=AT)


def start(store: SqlMetadataStore, text: str = CANARY) -> RolloutRecord:
    record = store.record_deployment(spec(text), "ann")
    first = state(text)
    return store.start_rollout("fraud", record.revision, first.to_dict(), first.phase, "ctl")


def at_once(work: Callable[[int], Any], n: int = THREADS) -> list[Any]:
    return together.at_once(work, n)


# -- deployment specs ---------------------------------------------------------------------------


def test_spec_revisions_count_from_one_and_an_equal_spec_is_a_no_op(
    store: SqlMetadataStore, clock: FakeClock
) -> None:
    first = store.record_deployment(spec(), "ann")
    assert (first.endpoint, first.revision, first.created_by, first.created_at) == (
        "fraud",
        1,
        "ann",
        AT,
    )
    assert first.spec == spec()
    assert first.digest == spec().digest()

    clock.advance(10)
    again = store.record_deployment(parse_spec(CANARY.replace("60s", "1m")), "bob")
    assert again == first  # same meaning, same digest: nothing written
    changed = store.record_deployment(spec(BLUE_GREEN), "bob")
    back = store.record_deployment(spec(), "bob")  # only the latest revision is compared
    assert [changed.revision, back.revision] == [2, 3]
    assert back.spec == first.spec
    assert back.digest == first.digest

    assert store.get_deployment("fraud") == back
    assert store.get_deployment("fraud", 2) == changed
    assert store.get_deployment("fraud", 1) == first
    audit = store.query_audit(action="deployment.record")
    assert [(e.actor, e.object_type, e.object_name) for e in audit] == [
        ("ann", "endpoint", "fraud"),
        ("bob", "endpoint", "fraud"),
        ("bob", "endpoint", "fraud"),
    ]
    assert audit[1].details == {
        "revision": 2,
        "digest": changed.digest,
        "previous_revision": 1,
        "strategy": "blue-green",
        "baseline": "fraud@champion",
        "candidate": "fraud:4",
    }
    assert first.to_dict()["spec"] == spec().to_dict()


def test_deployments_are_listed_latest_revision_per_endpoint(store: SqlMetadataStore) -> None:
    assert store.list_deployments() == []
    store.record_deployment(spec(), "ann")
    churn = store.record_deployment(spec("endpoint: churn\nbaseline: churn:1\n"), "ann")
    fraud = store.record_deployment(spec(BLUE_GREEN), "ann")
    assert store.list_deployments() == [churn, fraud]


def test_missing_specs_are_named(store: SqlMetadataStore) -> None:
    with pytest.raises(DeploymentNotFoundError, match=r"'fraud' has no deployment.*deploy"):
        store.get_deployment("fraud")
    store.record_deployment(spec(), "ann")
    with pytest.raises(DeploymentNotFoundError, match="no spec revision 4 \\(the latest is 1\\)"):
        store.get_deployment("fraud", 4)
    with pytest.raises(InvalidNameError):
        store.get_deployment("../x")
    with pytest.raises(InvalidInputError, match="positive integer"):
        store.get_deployment("fraud", 0)
    with pytest.raises(InvalidInputError, match="DeploymentSpec"):
        store.record_deployment(spec().to_dict(), "ann")  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="actor"):
        store.record_deployment(spec(), "")


# -- rollouts -----------------------------------------------------------------------------------


def test_one_unfinished_rollout_per_endpoint(store: SqlMetadataStore, clock: FakeClock) -> None:
    with pytest.raises(DeploymentNotFoundError):
        store.start_rollout("fraud", 1, state().to_dict(), "pending", "ctl")
    first = start(store)
    assert (first.endpoint, first.spec_revision, first.phase, first.revision) == (
        "fraud",
        1,
        "pending",
        1,
    )
    assert not first.finished
    assert store.current_rollout("fraud") == first
    assert RolloutState.from_dict(dict(first.state)) == state()

    with pytest.raises(ConflictError, match=r"rollout #\d+ in progress \(phase pending"):
        store.start_rollout("fraud", 1, state().to_dict(), "pending", "ctl")
    with pytest.raises(DeploymentNotFoundError, match="no spec revision 9"):
        store.start_rollout("fraud", 9, state().to_dict(), "pending", "ctl")

    clock.advance(5)
    aborted, _ = step(state(), Command("abort", "ann"), AT)
    done = store.save_rollout(first.id, aborted.to_dict(), "aborted", 1, "ctl", finished=True)
    assert (done.finished_at, done.updated_at, done.created_at) == (clock.now(), clock.now(), AT)
    assert store.current_rollout("fraud") is None
    assert store.latest_rollout("fraud") == done
    second = store.start_rollout("fraud", 1, state().to_dict(), "pending", "ctl")
    assert store.current_rollout("fraud") == second
    assert store.latest_rollout("fraud") == second
    assert store.latest_rollout("churn") is None
    assert store.list_rollouts("fraud") == [done, second]
    assert store.list_rollouts(active_only=True) == [second]
    assert store.list_rollouts("churn") == []
    assert [e.action for e in store.query_audit(model="fraud")][1:] == [
        "rollout.start",
        "rollout.finish",
        "rollout.start",
    ]


def test_partial_unique_index_backs_up_the_check(store: SqlMetadataStore, engine: Engine) -> None:
    first = start(store)
    row = {k: v for k, v in store.list_rollouts()[0].to_dict().items() if k in rollouts.c}
    row.update(id=first.id + 1, created_at=AT, updated_at=AT, finished_at=None)
    with pytest.raises(SqlIntegrityError), engine.begin() as conn:
        conn.execute(insert(rollouts).values(**row))
    with engine.begin() as conn:  # a finished one is fine
        conn.execute(insert(rollouts).values(**{**row, "finished_at": AT}))


def test_save_is_a_compare_and_swap(store: SqlMetadataStore, clock: FakeClock) -> None:
    first = start(store)
    moved, _ = step(state(), Tick(), AT)
    clock.advance(1)
    saved = store.save_rollout(first.id, moved.to_dict(), moved.phase, 1, "ctl")
    assert (saved.revision, saved.phase, saved.updated_at) == (2, "smoke", clock.now())
    assert store.current_rollout("fraud") == saved

    with pytest.raises(ConflictError, match="changed since revision 1 \\(it is at revision 2"):
        store.save_rollout(first.id, moved.to_dict(), moved.phase, 1, "ctl")
    with pytest.raises(RolloutNotFoundError, match="no rollout #99"):
        store.save_rollout(99, moved.to_dict(), moved.phase, 1, "ctl")
    with pytest.raises(InvalidInputError, match="says phase 'smoke' but 'canary'"):
        store.save_rollout(first.id, moved.to_dict(), "canary", 2, "ctl")
    with pytest.raises(InvalidInputError, match="belongs to endpoint 'churn'"):
        store.save_rollout(first.id, {**moved.to_dict(), "endpoint": "churn"}, "smoke", 2, "ctl")
    with pytest.raises(InvalidInputError, match="cannot be stored as JSON"):
        store.save_rollout(first.id, {"at": AT}, "smoke", 2, "ctl")
    with pytest.raises(InvalidInputError, match="larger than"):
        store.save_rollout(first.id, {"pad": "x" * 1_000_001}, "smoke", 2, "ctl")
    assert store.current_rollout("fraud") == saved

    final = store.save_rollout(first.id, moved.to_dict(), "smoke", 2, "ctl", finished=True)
    with pytest.raises(ConflictError, match="finished already"):
        store.save_rollout(first.id, moved.to_dict(), "smoke", final.revision, "ctl")
    updates = store.query_audit(action="rollout.update")
    assert [e.details for e in updates] == [
        {
            "rollout_id": first.id,
            "revision": 2,
            "phase_from": "pending",
            "phase_to": "smoke",
            "finished": False,
        }
    ]


def test_savers_with_the_same_expected_revision_exactly_one_wins(
    store: SqlMetadataStore,
) -> None:
    first = start(store)

    def save(i: int) -> RolloutRecord:
        doc = {**first.state, "reason": f"saver {i}"}
        return store.save_rollout(first.id, doc, "pending", 1, f"ctl{i}")

    results = at_once(save)
    won = [r for r in results if isinstance(r, RolloutRecord)]
    lost = [r for r in results if not isinstance(r, RolloutRecord)]
    assert len(won) == 1, results
    assert all(isinstance(r, ConflictError) for r in lost), lost
    current = store.current_rollout("fraud")
    assert current == won[0]
    assert current is not None
    assert current.revision == 2
    assert len(store.query_audit(action="rollout.update")) == 1


def test_concurrent_starts_leave_one_rollout(store: SqlMetadataStore) -> None:
    store.record_deployment(spec(), "ann")
    doc = state().to_dict()
    results = at_once(lambda i: store.start_rollout("fraud", 1, doc, "pending", f"ctl{i}"))
    assert sum(isinstance(r, RolloutRecord) for r in results) == 1, results
    assert all(isinstance(r, RolloutRecord | ConflictError) for r in results), results
    assert len(store.list_rollouts("fraud")) == 1


def test_concurrent_recorders_get_unique_revisions(store: SqlMetadataStore) -> None:
    def record(i: int) -> int:
        text = CANARY.replace("60s", f"{61 + i}s")
        return store.record_deployment(spec(text), f"w{i}").revision

    assert sorted(at_once(record)) == list(range(1, THREADS + 1))
    same = at_once(lambda i: store.record_deployment(spec(), f"w{i}").revision)
    assert len(set(same)) == 1  # one new revision, the others saw it
    assert len(store.query_audit(action="deployment.record")) == THREADS + 1


# -- events -------------------------------------------------------------------------------------


def gates() -> GatesReported:
    checks = (GateCheck("answered", 3, 3, True, op=">="), GateCheck("p95_ms", 12.5, 500, True))
    return GatesReported((GateReport("smoke", "fraud:4", None, checks),))


class Controller:
    """A minimal controller: steps the machine, saves with CAS and records every ``Record``."""

    def __init__(self, store: SqlMetadataStore, text: str = CANARY) -> None:
        self.store = store
        self.record = start(store, text)
        self.state = RolloutState.from_dict(dict(self.record.state))
        self.expected: list[dict[str, Any]] = []

    def send(self, event: Event, seconds: float) -> None:
        at = AT + timedelta(seconds=seconds)
        new, actions = step(self.state, event, at)
        if new == self.state:
            return
        events = [
            NewRolloutEvent.from_action(action_to_dict(a), self.state.phase, new.phase, at=at)
            for a in actions
            if isinstance(a, Record)
        ]
        self.expected += [action_to_dict(a) for a in actions if isinstance(a, Record)]
        self.record = self.store.save_rollout(
            self.record.id,
            new.to_dict(),
            new.phase,
            self.record.revision,
            "controller",
            finished=new.terminal,
            events=events,
        )
        self.state = new


def test_events_keep_their_order_and_figures(store: SqlMetadataStore) -> None:
    run = Controller(store)
    run.send(Tick(), 0)
    run.send(gates(), 1)
    run.send(GOOD, 61)
    run.send(BAD, 130)

    history = store.rollout_history("fraud")
    assert [e.kind for e in history] == [
        "rollout.started",
        "rollout.gates_passed",
        "rollout.step",
        "rollout.step",
        "rollout.rolled_back",
    ]
    assert [(e.phase_from, e.phase_to) for e in history] == [
        ("pending", "smoke"),
        ("smoke", "canary"),
        ("smoke", "canary"),
        ("canary", "canary"),
        ("canary", "rolled_back"),
    ]
    assert [e.at for e in history] == [AT + timedelta(seconds=s) for s in (0, 1, 1, 61, 130)]
    assert [[dict(f) for f in e.figures] for e in history] == [x["figures"] for x in run.expected]
    assert [e.reason for e in history] == [x["reason"] for x in run.expected]
    assert {e.actor for e in history} == {"controller"}
    failed = history[-1].to_dict()["figures"]
    assert any(f["name"] == "error_rate" and f["outcome"] == "fail" for f in failed)

    stored = store.list_rollouts("fraud")[0]
    assert stored.finished
    assert stored.phase == "rolled_back"
    assert RolloutState.from_dict(dict(stored.state)) == run.state
    (audit,) = store.query_audit(action="rollout.rolled_back")
    assert (audit.actor, audit.object_name) == ("controller", "fraud")
    assert audit.details["figures"] == failed
    assert audit.details["event_id"] == history[-1].id


def test_events_appended_alone_with_actor_time_and_nan(
    store: SqlMetadataStore, clock: FakeClock
) -> None:
    first = start(store)
    figures = ({"name": "p95_ms", "figure": math.nan, "threshold": math.inf},)
    store.add_rollout_events(
        first.id,
        [
            NewRolloutEvent("rollout.note", reason="first"),
            NewRolloutEvent("rollout.paused", "canary", "paused", "by hand", figures, actor="ann"),
        ],
        "ctl",
    )
    clock.advance(3)
    store.add_rollout_events(
        first.id, [NewRolloutEvent("rollout.note", at=AT - timedelta(hours=1))], "ctl"
    )
    history = store.rollout_history("fraud")
    assert [(e.kind, e.actor, e.at) for e in history] == [
        ("rollout.note", "ctl", AT),
        ("rollout.paused", "ann", AT),
        ("rollout.note", "ctl", AT - timedelta(hours=1)),  # recorded order, not time order
    ]
    assert history[1].figures == ({"name": "p95_ms", "figure": None, "threshold": None},)
    (paused,) = store.query_audit(action="rollout.paused")
    assert paused.details["recorded_by"] == "ctl"


def test_bad_events_are_refused_and_leave_no_trace(store: SqlMetadataStore) -> None:
    first = start(store)
    good = NewRolloutEvent("rollout.note")
    bad: list[Any] = [
        [good, NewRolloutEvent("no spaces allowed")],
        [NewRolloutEvent("rollout.note", figures={"a": 1})],  # type: ignore[arg-type]
        [NewRolloutEvent("rollout.note", figures=[1, 2])],  # type: ignore[list-item]
        [NewRolloutEvent("rollout.note", at=datetime(2026, 1, 1))],
        [NewRolloutEvent("rollout.note", phase_to="x" * 33)],
        [NewRolloutEvent("rollout.note", reason="x" * 10_001)],
        [NewRolloutEvent("rollout.note", actor="")],
        [good, "rollout.note"],
        good,
    ]
    for events in bad:
        with pytest.raises(InvalidInputError):
            store.add_rollout_events(first.id, events, "ctl")
    with pytest.raises(RolloutNotFoundError, match="no rollout #77"):
        store.add_rollout_events(77, [good], "ctl")
    with pytest.raises(DeploymentNotFoundError):
        store.rollout_history("churn")
    assert store.rollout_history("fraud") == []
    assert store.query_audit(action="rollout.note") == []


# -- commands -----------------------------------------------------------------------------------


def test_commands_are_queued_for_the_running_rollout_and_consumed_once(
    store: SqlMetadataStore, clock: FakeClock
) -> None:
    with pytest.raises(DeploymentNotFoundError, match="no deployment"):
        store.add_rollout_command("fraud", "pause", "ann")
    store.record_deployment(spec(), "ann")
    with pytest.raises(RolloutNotFoundError, match="no rollout in progress, so there is nothing"):
        store.add_rollout_command("fraud", "pause", "ann")
    first = store.start_rollout("fraud", 1, state().to_dict(), "pending", "ctl")
    with pytest.raises(InvalidInputError, match="unknown rollout command 'restart'"):
        store.add_rollout_command("fraud", "restart", "ann")

    pause = store.add_rollout_command("fraud", "pause", "ann", reason="looks odd")
    clock.advance(1)
    resume = store.add_rollout_command("fraud", "resume", "bob")
    assert (pause.rollout_id, pause.endpoint, pause.op, pause.actor, pause.reason) == (
        first.id,
        "fraud",
        "pause",
        "ann",
        "looks odd",
    )
    assert pause.pending
    assert pause.created_at == AT
    assert store.pending_commands(first.id) == [pause, resume]

    store.consume_command(pause.id, "ctl")
    assert store.pending_commands(first.id) == [resume]
    with pytest.raises(ConflictError, match=r"consumed already.*acted on once"):
        store.consume_command(pause.id, "ctl")
    with pytest.raises(RolloutNotFoundError, match="no rollout command #999"):
        store.consume_command(999, "ctl")
    with pytest.raises(RolloutNotFoundError):
        store.pending_commands(999)

    audit = store.query_audit(model="fraud")
    assert [e.action for e in audit][-3:] == [
        "rollout.command",
        "rollout.command",
        "rollout.command_consumed",
    ]
    assert audit[-1].details == {"rollout_id": first.id, "command_id": pause.id, "op": "pause"}
    assert audit[-3].details["reason"] == "looks odd"

    store.save_rollout(first.id, state().to_dict(), "pending", 1, "ctl", finished=True)
    with pytest.raises(RolloutNotFoundError, match=r"the last one, #\d+, is pending"):
        store.add_rollout_command("fraud", "abort", "ann")


def test_save_consumes_commands_in_its_transaction(store: SqlMetadataStore) -> None:
    first = start(store)
    cmd = store.add_rollout_command("fraud", "abort", "ann")
    aborted, _ = step(state(), Command("abort", "ann"), AT)
    doc = aborted.to_dict()
    with pytest.raises(RolloutNotFoundError):
        store.save_rollout(first.id, doc, "aborted", 1, "ctl", True, consumed=[cmd.id + 1])
    assert store.pending_commands(first.id) == [cmd]  # nothing saved either
    assert store.current_rollout("fraud") == first

    done = store.save_rollout(first.id, doc, "aborted", 1, "ctl", True, consumed=[cmd.id, cmd.id])
    assert done.finished
    assert store.pending_commands(first.id) == []

    other = store.start_rollout("fraud", 1, state().to_dict(), "pending", "ctl")
    with pytest.raises(ConflictError, match="not a command of rollout"):
        store.save_rollout(other.id, state().to_dict(), "pending", 1, "ctl", consumed=[cmd.id])


def test_concurrent_consumers_exactly_one_wins(store: SqlMetadataStore) -> None:
    first = start(store)
    cmd = store.add_rollout_command("fraud", "promote", "ann")
    results = at_once(lambda i: store.consume_command(cmd.id, f"ctl{i}"))
    assert results.count(None) == 1, results
    assert all(isinstance(r, ConflictError) for r in results if r is not None)
    assert store.pending_commands(first.id) == []
    assert len(store.query_audit(action="rollout.command_consumed")) == 1


def test_command_ops_are_the_machines() -> None:
    assert set(COMMAND_OPS) == set(get_args(Op))


def test_records_to_dict_are_json_shaped(store: SqlMetadataStore) -> None:
    first = start(store)
    cmd = store.add_rollout_command("fraud", "pause", "ann")
    assert set(first.to_dict()) == {
        "id",
        "endpoint",
        "spec_revision",
        "phase",
        "state",
        "revision",
        "finished",
        "created_at",
        "updated_at",
        "finished_at",
    }
    assert cmd.to_dict()["pending"] is True
    assert cmd.to_dict()["created_at"] == AT.isoformat()
    assert issubclass(RolloutNotFoundError, NotFoundError)
    assert issubclass(DeploymentNotFoundError, NotFoundError)


# -- migration ----------------------------------------------------------------------------------


def test_upgrade_from_0003_keeps_data_and_downgrade_drops_only_0004_and_later(
    db_url: str, engine: Engine
) -> None:
    with engine.begin() as conn:
        command.upgrade(alembic_config(conn), "0003")
    upgrade(engine)
    with engine.connect() as conn:
        assert current_revision(conn) == head_revision()
    with SqlMetadataStore.open(db_url) as store:
        start(store)
        assert len(store.list_rollouts()) == 1

    with engine.begin() as conn:
        command.downgrade(alembic_config(conn), "0003")
    with engine.connect() as conn:
        names = set(engine.dialect.get_table_names(conn))
        assert conn.execute(text("SELECT count(*) FROM audit_events")).scalar() == 2
    dropped = {"deployment_specs", "rollouts", "rollout_events", "rollout_commands"}
    assert not names & (dropped | {"endpoint_routes"})
    assert {"models", "gate_reports", "audit_events"} <= names
    upgrade(engine)
    with SqlMetadataStore.open(db_url) as store:
        assert store.list_deployments() == []
