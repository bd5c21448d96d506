from __future__ import annotations

import asyncio

import pytest
from tests.rollout.controller_fakes import T0, Harness, smoke_report

from modelport.core.errors import ModelLoadError, StoreUnavailableError, UnavailableError
from modelport.rollout import RolloutState, SetWeights, ShadowWindow, StopShadow, VersionWindow
from modelport.rollout.outbox import load

HEAD = "endpoint: fraud\nbaseline: fraud@champion\ncandidate: fraud:4\n"
CANARY = HEAD + "strategy: {kind: canary, steps: [10, 50, 100], step_interval: 5m}\n"
BASE = VersionWindow(requests=5000, errors=25, p95_ms=80.0)
GOOD = {3: BASE, 4: VersionWindow(requests=500, errors=2, p95_ms=85.0)}
BAD = {3: BASE, 4: VersionWindow(requests=500, errors=100, p95_ms=85.0)}
TIMEOUT = 1800  # analysis.no_data_timeout's default


def canary(text: str = CANARY) -> Harness:
    """A harness whose canary has passed its gates: candidate at 10% since t=0."""
    h = Harness()
    h.store.deploy(text)
    first = h.tick(0)
    assert first.started, first
    assert first.phase == "canary", first
    return h


def test_a_full_canary_promotes() -> None:
    h = canary()
    h.windows.set(GOOD)
    assert h.tick(100).applied == ()  # passing, but the step interval has not elapsed
    assert h.tick(310).phase == "canary"
    last = h.tick(620)
    assert last.phase == "promoted"
    assert h.traffic.weights() == [(100, 0), (90, 10), (50, 50), (0, 100)]
    assert h.traffic.tables["fraud"].routes == {4: 100}
    assert [c[:3] for c in h.aliases.calls] == [("fraud", "champion", 4)]
    assert "passed; promoting" in h.aliases.calls[0][3]
    assert h.gates.calls == [("fraud", 3, 4)]
    assert h.store.kinds() == [
        "rollout.started",
        "rollout.phase_changed",  # pending -> smoke
        "rollout.gates_passed",
        "rollout.step",
        "rollout.phase_changed",  # smoke -> canary
        "rollout.step",
        "rollout.promoted",
        "rollout.phase_changed",  # canary -> promoted
    ]
    promoted = h.store.of_kind("rollout.promoted")[0]
    assert (promoted.phase_from, promoted.phase_to, promoted.actor) == (
        "canary",
        "promoted",
        "controller",
    )
    assert promoted.at == h.clock.now()
    figures = {f["name"]: f for f in promoted.figures}
    assert figures["error_rate"]["figure"] == pytest.approx(0.004)
    assert figures["error_rate"]["outcome"] == "pass"
    assert h.store.of_kind("rollout.gates_passed")[0].figures[0]["name"] == "answered"
    assert [since for _, _, since in h.windows.calls][-1] == h.store.state().stage_started_at
    (rollout,) = h.store.history()
    assert rollout.finished_at is not None
    assert "outbox" not in rollout.state
    calls = len(h.traffic.calls)
    h.windows.set(BAD)
    for t in (700, 800, 900):
        assert h.tick(t).applied == ()
    assert len(h.traffic.calls) == calls
    assert len(h.aliases.calls) == 1


def test_a_breach_rolls_back_exactly_once_across_ticks() -> None:
    h = canary()
    h.windows.set(BAD)
    report = h.tick(60)
    assert report.phase == "rolled_back"
    assert h.traffic.routes()[-2:] == [StopShadow(), SetWeights(100, 0)]
    assert h.traffic.tables["fraud"].routes == {3: 100}
    calls = len(h.traffic.calls)
    for t in range(61, 400, 30):
        assert h.tick(t).applied == ()
    assert len(h.traffic.calls) == calls
    (event,) = h.store.of_kind("rollout.rolled_back")
    assert "error rate 0.2 is above 0.05" in event.reason
    assert any(f["name"] == "error_rate" and f["outcome"] == "fail" for f in event.figures)
    assert h.aliases.calls == []
    assert h.store.history()[0].finished_at is not None


def test_missing_windows_wait_then_abort_at_the_timeout_without_rollback() -> None:
    h = canary()
    thin = {3: BASE, 4: VersionWindow(requests=20, errors=20, p95_ms=900.0)}
    for t in range(60, TIMEOUT, 60):
        if t % 180 == 0:
            h.windows.set(thin)  # too little data: all errors, still no failure
        elif t % 180 == 60:
            h.windows.set({3: BASE})  # the candidate has no window at all
        else:
            h.windows.error = UnavailableError("the monitor is restarting")
        assert h.tick(t).applied == (), t
        h.windows.error = None
    assert h.store.state().phase == "canary"
    report = h.tick(TIMEOUT)
    assert report.phase == "aborted"
    assert [a["type"] for a in report.applied] == ["SetWeights"]
    assert h.traffic.routes()[-1] == SetWeights(100, 0)
    assert h.store.of_kind("rollout.rolled_back") == []
    assert len(h.store.of_kind("rollout.aborted")) == 1
    assert h.traffic.tables["fraud"].routes == {3: 100}


def test_operator_commands_are_consumed_once() -> None:
    h = canary()
    h.windows.set(GOOD)
    h.store.command("fraud", "pause", "alice", "looking at a dashboard")
    assert h.tick(30).phase == "paused"
    assert h.traffic.weights()[-1] == (90, 10)  # a pause holds the weights
    for t in (400, 700):  # paused: the stage does not advance, the command is not re-read
        assert h.tick(t).applied == ()
    (paused,) = h.store.of_kind("rollout.paused")
    assert paused.actor == "alice"
    assert "looking at a dashboard" in paused.reason
    h.store.command("fraud", "resume", "bob")
    assert h.tick(710).phase == "canary"
    assert h.tick(1000).phase == "canary"
    assert h.traffic.weights()[-1] == (90, 10)  # resume restarted the stage clock at 710
    h.tick(1010)
    assert h.traffic.weights()[-1] == (50, 50)
    h.store.command("fraud", "promote", "carol", "ship it")
    assert h.tick(1015).phase == "promoted"
    assert h.aliases.history == [("fraud", "champion", 3, 4)]
    h.store.command("fraud", "promote", "carol")  # the outcome again: changes nothing
    h.store.command("fraud", "rollback", "dave")  # contradicts it: rejected
    h.store.command("fraud", "launch", "eve")  # not a command
    h.tick(1020)
    h.tick(1030)
    assert all(c.consumed for c in h.store.commands.values())
    assert [e.actor for e in h.store.of_kind("rollout.command_ignored")] == ["carol"]
    rejected = h.store.of_kind("rollout.command_rejected")
    assert [e.actor for e in rejected] == ["dave", "eve"]
    assert "promoted already" in rejected[0].reason
    assert "unknown" in rejected[1].reason
    assert len(h.store.of_kind("rollout.resumed")) == 1
    assert len(h.store.of_kind("rollout.promoted")) == 1


@pytest.mark.parametrize("op", ["rollback", "abort"])
def test_an_operator_rollback_or_abort_routes_back_to_the_baseline(op: str) -> None:
    h = canary()
    h.windows.set(GOOD)
    h.store.command("fraud", op, "alice", "wrong model")
    assert h.tick(30).phase == {"rollback": "rolled_back", "abort": "aborted"}[op]
    assert h.traffic.tables["fraud"].routes == {3: 100}
    assert h.tick(60).applied == ()
    event = h.store.of_kind(f"rollout.{'rolled_back' if op == 'rollback' else 'aborted'}")
    assert [e.actor for e in event] == ["alice"]


def test_a_cas_conflict_applies_nothing_that_tick() -> None:
    h = canary()
    h.windows.set(BAD)
    rival = h.rival()  # a second controller process, sharing every port
    calls = len(h.traffic.calls)
    h.store.on_save = lambda: asyncio.run(rival.tick())  # it acts between our load and save
    report = h.tick(60)
    assert report.conflict
    assert report.applied == ()
    assert report.events == ()
    assert report.phase == "rolled_back"  # reloaded: the rival's decision
    assert h.traffic.routes()[calls:] == [StopShadow(), SetWeights(100, 0)]  # the rival's only
    assert len(h.store.of_kind("rollout.rolled_back")) == 1
    h.tick(90)
    assert len(h.traffic.calls) == calls + 2


def test_a_crash_after_applying_traffic_converges_without_double_applying() -> None:
    h = canary()
    h.windows.set(BAD)
    h.faults.arm("traffic")  # dies right after publishing the first route change
    crashed = h.tick(60)
    assert "Crash" in crashed.error
    saved = h.store.history()[0]
    state, outbox = load(saved.state)
    assert state.phase == "rolled_back"
    assert outbox is not None
    assert saved.finished_at is None
    assert RolloutState.from_dict(dict(saved.state)).phase == "rolled_back"  # readers unaffected
    assert len(h.store.of_kind("rollout.rolled_back")) == 1  # recorded with the decision
    assert h.traffic.tables["fraud"].routes == {3: 90, 4: 10}  # the crash: not applied yet

    h.restart()  # a new process: the dead one's outbox is taken over after recover_after_s
    waiting = h.tick(70)
    assert waiting.waiting
    assert waiting.applied == ()
    recovered = h.tick(95)
    assert recovered.applied[-1]["type"] == "SetWeights"
    assert h.traffic.tables["fraud"].routes == {3: 100}
    assert len(h.store.of_kind("rollout.rolled_back")) == 1
    assert h.store.history()[0].finished_at is not None
    for t in (120, 150):
        assert h.tick(t).applied == ()
    assert h.traffic.weights() == [(100, 0), (90, 10), (100, 0)]


def test_a_crash_between_applying_and_saving_converges_with_each_event_once() -> None:
    h = canary()
    h.windows.set(GOOD)
    h.tick(310)
    h.faults.arm("save", skip=1)  # the decision is saved; the save after the effects is not
    assert "Crash" in h.tick(620).error
    assert h.aliases.history == [("fraud", "champion", 3, 4)]
    assert h.store.history()[0].finished_at is None
    h.restart()
    h.tick(660)
    assert h.store.state().phase == "promoted"
    assert len(h.aliases.calls) == 2
    assert len(h.aliases.history) == 1
    assert h.traffic.weights()[-2:] == [(0, 100), (0, 100)]
    assert len(h.store.of_kind("rollout.promoted")) == 1
    assert h.store.kinds().count("rollout.step") == 2


def test_a_crash_before_the_decision_is_saved_changes_nothing() -> None:
    h = canary()
    h.windows.set(BAD)
    h.store.command("fraud", "pause", "alice")
    calls, kinds = len(h.traffic.calls), h.store.kinds()
    h.faults.arm("save")  # dies before the decision lands
    assert "Crash" in h.tick(60).error
    assert len(h.traffic.calls) == calls
    assert h.store.kinds() == kinds
    assert [c.consumed for c in h.store.commands.values()] == [False]
    h.restart()
    assert h.tick(70).phase == "rolled_back"  # paused by alice, then the breach: on_failure
    assert [c.consumed for c in h.store.commands.values()] == [True]
    assert len(h.store.of_kind("rollout.paused")) == 1
    assert len(h.store.of_kind("rollout.rolled_back")) == 1
    assert h.traffic.routes()[calls:] == [StopShadow(), SetWeights(100, 0)]


def test_only_one_restarted_controller_takes_a_left_outbox_over() -> None:
    h = canary()
    h.windows.set(BAD)
    h.faults.arm("traffic")
    h.tick(60)
    first, second = h.rival(), h.rival()
    h.clock.advance(40)
    h.store.on_save = lambda: asyncio.run(second.tick())  # both found it; second claims first
    report = asyncio.run(first.tick()).endpoint("fraud")
    assert report.conflict
    assert report.applied == ()
    assert h.traffic.weights() == [(100, 0), (90, 10), (100, 0)]
    assert len(h.store.of_kind("rollout.rolled_back")) == 1


def test_the_same_controller_retries_its_own_outbox_at_once() -> None:
    h = canary()
    h.windows.set(BAD)
    h.faults.arm("traffic", error=StoreUnavailableError("route table store is down"))
    assert "StoreUnavailableError" in h.tick(60).error
    retried = h.tick(61)
    assert not retried.waiting
    assert retried.phase == "rolled_back"
    assert h.traffic.tables["fraud"].routes == {3: 100}
    assert len(h.store.of_kind("rollout.rolled_back")) == 1


def test_failing_gates_roll_back_before_any_traffic() -> None:
    h = Harness()
    h.gates.reports = [smoke_report(passed=False)]
    h.store.deploy(CANARY)
    assert h.tick(0).phase == "rolled_back"
    assert all(candidate == 0 for _, candidate in h.traffic.weights())
    assert h.traffic.tables["fraud"].routes == {3: 100}
    (event,) = h.store.of_kind("rollout.rolled_back")
    assert "smoke gate FAILED" in event.reason
    assert event.figures[0]["name"] == "answered"
    assert h.windows.calls == []


def test_a_candidate_that_cannot_be_gated_fails_and_a_transient_error_retries() -> None:
    h = Harness()
    h.gates.error = StoreUnavailableError("registry unreachable")
    h.store.deploy(CANARY)
    first = h.tick(0)
    assert first.phase == "smoke"
    assert "gates could not run" in first.waiting
    h.gates.error = ModelLoadError("fraud:4 does not load: truncated file")
    assert h.tick(30).phase == "rolled_back"
    assert len(h.gates.calls) == 2
    (event,) = h.store.of_kind("rollout.rolled_back")
    assert "truncated file" in event.figures[0]["detail"]


def test_manual_promotion_waits_for_the_operator() -> None:
    h = canary(CANARY + "promotion: manual\n")
    h.windows.set(GOOD)
    h.tick(310)
    assert h.tick(700).phase == "canary"
    assert h.store.state().ready
    assert h.tick(2000).phase == "canary"
    assert h.aliases.calls == []
    h.store.command("fraud", "promote", "alice")
    assert h.tick(2010).phase == "promoted"
    assert h.aliases.history == [("fraud", "champion", 3, 4)]


def test_one_failing_endpoint_does_not_stop_the_others() -> None:
    h = Harness()
    h.store.deploy("endpoint: churn\nbaseline: churn@champion\n")  # alias never set
    h.store.deploy(CANARY)
    report = asyncio.run(h.controller.tick())
    assert "KeyError" in report.endpoint("churn").error
    assert report.endpoint("fraud").phase == "canary"
    assert [e.endpoint for e in report.errors] == ["churn"]


def test_run_ticks_with_the_injected_sleep_until_stopped() -> None:
    h = Harness()
    h.store.deploy(CANARY)
    h.windows.set(GOOD)
    stop = asyncio.Event()
    naps: list[float] = []

    async def sleep(seconds: float) -> None:
        naps.append(seconds)
        h.clock.advance(seconds)
        if len(naps) == 3:
            stop.set()

    asyncio.run(h.controller.run(310, stop, sleep=sleep))
    assert naps == [310, 310, 310]
    assert h.store.state().phase == "promoted"
    assert h.clock.now() == T0.replace(minute=15, second=30)

    async def stopped_at_once() -> None:
        already = asyncio.Event()
        already.set()
        await h.controller.run(3600, already)  # returns without waiting

    asyncio.run(stopped_at_once())


def test_shadow_agreement_gates_the_canary() -> None:
    h = Harness()
    shadow = "strategy: {kind: shadow, fraction: 0.2, duration: 10m, then: {steps: [50, 100]}}\n"
    h.store.deploy(HEAD + shadow)
    assert h.tick(0).phase == "shadow"
    table = h.traffic.tables["fraud"]
    assert (table.routes, table.shadow) == ({3: 100}, (4, 0.2))
    h.windows.set({3: BASE, 4: VersionWindow(requests=400, p95_ms=82.0)}, ShadowWindow(400, 396))
    assert h.tick(300).phase == "shadow"
    assert h.tick(600).phase == "canary"
    assert (table.routes, table.shadow) == ({3: 50, 4: 50}, None)
    h.windows.set(GOOD)
    assert h.tick(900).phase == "promoted"

    low = Harness()
    low.store.deploy(HEAD + shadow)
    low.tick(0)
    low.windows.set({3: BASE, 4: VersionWindow(requests=400, p95_ms=82.0)}, ShadowWindow(400, 300))
    assert low.tick(60).phase == "rolled_back"
    assert (low.traffic.tables["fraud"].routes, low.traffic.tables["fraud"].shadow) == (
        {3: 100},
        None,
    )
    assert (
        "shadow agreement 0.75 is below 0.95" in low.store.of_kind("rollout.rolled_back")[0].reason
    )


def test_ab_splits_sticky_cohorts_then_promotes() -> None:
    h = Harness()
    h.store.deploy(
        HEAD + "strategy: {kind: ab, split: 30, sticky_key: header:X-User, duration: 1h}\n"
    )
    assert h.tick(0).phase == "ab"
    table = h.traffic.tables["fraud"]
    assert (table.routes, table.sticky) == ({3: 70, 4: 30}, "header:x-user")
    h.windows.set(GOOD)
    assert h.tick(1800).phase == "ab"
    assert h.tick(3600).phase == "promoted"
    assert (table.routes, table.sticky) == ({4: 100}, None)
    assert h.aliases.history == [("fraud", "champion", 3, 4)]


def test_blue_green_switches_in_one_step_and_verifies_on_absolute_thresholds() -> None:
    h = Harness()
    h.store.deploy(HEAD + "strategy: {kind: blue-green, switch_after: 1m, verify_for: 5m}\n")
    assert h.tick(0).phase == "preview"
    assert h.traffic.tables["fraud"].routes == {3: 100}
    assert h.tick(30).phase == "preview"
    assert h.windows.calls == []
    assert h.tick(60).phase == "verify"
    assert h.traffic.tables["fraud"].routes == {4: 100}
    h.windows.set({4: GOOD[4]})  # the baseline takes no traffic: only absolute checks
    assert h.tick(200).phase == "verify"
    assert h.tick(360).phase == "promoted"
    assert h.traffic.weights() == [(100, 0), (0, 100)]
    assert h.aliases.history == [("fraud", "champion", 3, 4)]


def test_consecutive_rollouts_leave_no_stale_routes() -> None:
    h = canary()
    h.windows.set(BAD)
    assert h.tick(60).phase == "rolled_back"
    h.store.deploy(CANARY.replace("fraud:4", "fraud:5"))
    h.windows.set({3: BASE, 5: GOOD[4]})
    report = h.tick(120)
    assert report.started
    assert report.phase == "canary"
    second = h.store.history()[-1]
    assert second.spec_revision == 2
    assert len(h.store.history()) == 2
    assert h.traffic.tables["fraud"].routes == {3: 90, 5: 10}
    assert h.traffic.calls[-3:] == [
        ("fraud", StopShadow(), (3, 5)),
        ("fraud", SetWeights(100, 0), (3, 5)),
        ("fraud", SetWeights(90, 10), (3, 5)),
    ]
    # a newer spec while this one runs: it is aborted (routes back), then the next one starts
    h.store.deploy(HEAD.replace("fraud:4", "fraud:6") + "strategy: {kind: shadow, fraction: 0.5}\n")
    assert h.tick(200).phase == "shadow"
    rollouts = h.store.history()
    assert [r.phase for r in rollouts] == ["rolled_back", "aborted", "shadow"]
    assert all(r.finished_at is not None for r in rollouts[:2])
    table = h.traffic.tables["fraud"]
    assert (table.routes, table.shadow) == ({3: 100}, (6, 0.5))
    assert "superseded by spec revision 3" in h.store.of_kind("rollout.aborted")[0].reason
    # after a promotion the alias names the new baseline
    h.windows.set({3: BASE, 6: VersionWindow(requests=400, p95_ms=82.0)}, ShadowWindow(400, 399))
    assert h.tick(800).phase == "promoted"
    assert h.traffic.tables["fraud"] == type(table)({6: 100})
    h.store.deploy(CANARY.replace("fraud:4", "fraud:7"))
    h.tick(900)
    assert h.traffic.tables["fraud"].routes == {6: 90, 7: 10}


def test_a_deployment_without_candidate_routes_its_baseline_only() -> None:
    h = Harness()
    h.store.deploy("endpoint: fraud\nbaseline: fraud:2\n")
    assert h.tick(0).phase == "promoted"
    assert h.traffic.calls == [
        ("fraud", StopShadow(), (2, None)),
        ("fraud", SetWeights(100, 0), (2, None)),
    ]
    assert h.aliases.calls == []
    assert h.gates.calls == []
    assert h.store.kinds() == ["rollout.promoted", "rollout.phase_changed"]
    h.store.deploy(HEAD + "strategy: {kind: direct}\n")
    assert h.tick(10).phase == "promoted"
    assert h.traffic.tables["fraud"].routes == {4: 100}
    assert h.aliases.history == [("fraud", "champion", 3, 4)]
