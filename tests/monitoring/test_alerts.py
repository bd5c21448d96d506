"""Alert rules (loading, validation) and the evaluator's state machine, on a fake clock."""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path
from typing import Any

import pytest

from modelport.core.clock import FakeClock
from modelport.core.errors import InvalidInputError
from modelport.monitoring.alert_events import format_value, format_window
from modelport.monitoring.alert_rules import AlertRule, load_rules
from modelport.monitoring.alerts import AlertEvaluator, Observation, windows_needed

W = 300


def rule(**fields: Any) -> AlertRule:
    base: dict[str, Any] = {"name": "r", "kind": "error_rate", "threshold": 0.1, "window_s": W}
    return AlertRule.model_validate(base | fields)


def obs(model: str = "iris", version: str = "1", **fields: Any) -> Observation:
    base: dict[str, Any] = {"window_s": W, "requests": 100, "errors": 0}
    return Observation(model=model, version=version, **(base | fields))


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


# -- rules -----------------------------------------------------------------------------------------
RULES_YAML = """
rules:
  - name: iris-p95
    kind: p95_latency
    model: iris
    threshold: 0.25
    window_s: 300
    for_s: 120
    severity: critical
    summary: iris is slow
  - name: drift.any
    kind: drift
    threshold: 0.2
    window_s: 3600
    statistic: ks
"""


def test_load_rules_from_text_path_and_path_string(tmp_path: Path) -> None:
    rules = load_rules(RULES_YAML)
    assert [r.name for r in rules] == ["iris-p95", "drift.any"]
    p95, drift = rules
    assert (p95.model, p95.version, p95.for_s, p95.severity) == ("iris", None, 120, "critical")
    assert (drift.model, drift.statistic, drift.feature, drift.min_samples) == ("*", "ks", None, 20)
    assert drift.severity == "warning"
    path = tmp_path / "alerts.yaml"
    path.write_text(RULES_YAML)
    assert load_rules(path) == rules
    assert load_rules(str(path)) == rules
    assert load_rules("") == ()
    assert load_rules("rules: []") == ()


def test_missing_rules_file_is_named() -> None:
    with pytest.raises(InvalidInputError, match=r"cannot read alert rules file .*nope\.yaml"):
        load_rules("/nonexistent/nope.yaml")


@pytest.mark.parametrize(
    ("item", "expected"),
    [
        ({"threshold": 2}, r"rules\[1\] \(rule 'bad'\): a error_rate threshold is a fraction"),
        ({"threshold": "x"}, r"rules\[1\]\.threshold \(rule 'bad'\): Input should be a valid"),
        ({"window_s": 0}, r"rules\[1\]\.window_s \(rule 'bad'\): .*greater than or equal to 1"),
        ({"bogus": 1}, r"rules\[1\]\.bogus \(rule 'bad'\): Extra inputs are not permitted"),
        ({"kind": "latency"}, r"rules\[1\]\.kind \(rule 'bad'\): Input should be 'p95_latency'"),
        ({"severity": "page"}, r"rules\[1\]\.severity"),
        ({"statistic": "ks"}, r"statistic and feature apply to drift rules only"),
        ({"model": "../x"}, r"rules\[1\]\.model .*or '\*' for every model"),
        ({"version": "3 4"}, r"rules\[1\]\.version"),
        ({"name": "Bad Name"}, r"rules\[1\]\.name: String should match pattern"),
        ({"summary": "a\nb"}, r"rules\[1\]\.summary .*control characters"),
    ],
)
def test_rule_errors_name_index_rule_and_field(item: dict[str, Any], expected: str) -> None:
    good = {"name": "ok", "kind": "error_rate", "threshold": 0.1, "window_s": 60}
    bad = good | {"name": "bad"} | item
    with pytest.raises(InvalidInputError, match=expected):
        load_rules(json.dumps({"rules": [good, bad]}))


def test_rule_errors_never_echo_the_value() -> None:
    bad = {"name": "x", "kind": "error_rate", "threshold": "hunter2-secret", "window_s": 60}
    with pytest.raises(InvalidInputError) as info:
        load_rules(json.dumps({"rules": [bad]}))
    assert "hunter2" not in str(info.value)


def test_every_problem_is_reported_at_once() -> None:
    rules = [{"name": "a", "kind": "drift"}, {"name": "b", "kind": "accuracy", "threshold": -1}]
    with pytest.raises(InvalidInputError) as info:
        load_rules(json.dumps({"rules": rules}))
    text = str(info.value)
    assert "rules[0].threshold" in text
    assert "rules[0].window_s" in text
    assert "rules[1]" in text


def test_duplicate_rule_names_are_rejected() -> None:
    r = {"name": "dup", "kind": "error_rate", "threshold": 0.1, "window_s": 60}
    with pytest.raises(InvalidInputError, match=r"rules\[1\]: rule name 'dup' .* rules\[0\]"):
        load_rules(json.dumps({"rules": [r, r]}))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("rules: [", r"not valid YAML at line"),
        ("- a\n- b\n", r"mapping with one key, 'rules'"),
        ("rules: []\nextra: 1\n", r"mapping with one key, 'rules'"),
        ("rules: {a: 1}\n", r"'rules' must be a list"),
        ("rules: [1]\n", r"rules\[0\]: a rule must be a mapping"),
    ],
)
def test_malformed_documents(text: str, expected: str) -> None:
    with pytest.raises(InvalidInputError, match=expected):
        load_rules(text)


@pytest.mark.parametrize(
    ("kind", "threshold", "ok"),
    [
        ("p95_latency", 0.0, False),
        ("p95_latency", 0.001, True),
        ("error_rate", 1.0, True),
        ("error_rate", 1.01, False),
        ("accuracy", -0.1, False),
        ("drift", 0.0, True),
        ("drift", -0.1, False),
        ("drift", math.inf, False),
    ],
)
def test_threshold_ranges_by_kind(kind: str, threshold: float, ok: bool) -> None:
    if ok:
        rule(kind=kind, threshold=threshold)
    else:
        with pytest.raises(ValueError, match="threshold"):
            rule(kind=kind, threshold=threshold)


def test_rules_are_frozen_and_direction_is_implied() -> None:
    acc = rule(kind="accuracy", threshold=0.9)
    with pytest.raises(ValueError, match="frozen"):
        acc.threshold = 0.5  # type: ignore[misc]
    assert acc.breached(0.89)
    assert not acc.breached(0.9)
    assert not acc.breached(0.95)
    err = rule(threshold=0.1)
    assert err.breached(0.11)
    assert not err.breached(0.1)


def test_windows_needed() -> None:
    assert windows_needed([rule(window_s=60), rule(window_s=3600), rule(window_s=60)]) == [60, 3600]


# -- evaluation ------------------------------------------------------------------------------------
def test_fires_once_then_resolves(clock: FakeClock) -> None:
    ev = AlertEvaluator([rule(name="errors", severity="critical")], clock)
    start = clock.now()
    (fired,) = ev.evaluate([obs(errors=25)])
    assert (fired.rule, fired.status, fired.kind, fired.severity) == (
        "errors",
        "firing",
        "error_rate",
        "critical",
    )
    assert (fired.model, fired.version, fired.feature, fired.statistic) == ("iris", "1", None, None)
    assert (fired.value, fired.threshold, fired.window_s) == (0.25, 0.1, W)
    assert (fired.starts_at, fired.ends_at) == (start, None)
    expected_fp = hashlib.sha256(b"errors\x1firis\x1f1\x1f").hexdigest()[:16]
    assert fired.fingerprint == expected_fp
    assert fired.summary == (
        "iris:1 error rate 25% over 5m, above the 10% threshold (100 requests)"
    )
    clock.advance(60)
    assert ev.evaluate([obs(errors=30)]) == []  # still true: no second notification
    (active,) = ev.firing()
    assert (active.since, active.value, active.threshold, active.stale) == (start, 0.3, 0.1, False)
    assert active.fingerprint == expected_fp
    clock.advance(60)
    (resolved,) = ev.evaluate([obs(errors=1)])
    assert (resolved.status, resolved.starts_at, resolved.ends_at) == (
        "resolved",
        start,
        clock.now(),
    )
    assert resolved.fingerprint == expected_fp
    assert resolved.value == 0.01
    assert (
        resolved.summary == "resolved: iris:1 error rate 1% over 5m, back below the 10% threshold"
    )
    assert ev.firing() == []
    assert ev.evaluate([obs(errors=1)]) == []


def test_equal_to_threshold_does_not_fire(clock: FakeClock) -> None:
    ev = AlertEvaluator([rule(threshold=0.1)], clock)
    assert ev.evaluate([obs(errors=10)]) == []


def test_for_s_keeps_the_alert_pending(clock: FakeClock) -> None:
    ev = AlertEvaluator([rule(for_s=120)], clock)
    assert ev.evaluate([obs(errors=50)]) == []
    clock.advance(60)
    assert ev.evaluate([obs(errors=50)]) == []
    assert ev.firing() == []
    clock.advance(60)
    (fired,) = ev.evaluate([obs(errors=50)])
    assert fired.status == "firing"
    assert fired.starts_at == clock.now()


def test_pending_restarts_when_the_condition_clears(clock: FakeClock) -> None:
    ev = AlertEvaluator([rule(for_s=120)], clock)
    for errors in (50, 0, 50, 50):  # t=0 pending, t=60 cleared, t=120 pending again, t=180
        assert ev.evaluate([obs(errors=errors)]) == []
        clock.advance(60)
    (fired,) = ev.evaluate([obs(errors=50)])  # t=240: 120 s after the new pending start
    assert fired.status == "firing"


def test_flapping_never_fires_with_for_s(clock: FakeClock) -> None:
    ev = AlertEvaluator([rule(for_s=90)], clock)
    for i in range(20):
        assert ev.evaluate([obs(errors=50 if i % 2 == 0 else 0)]) == []
        clock.advance(60)


def test_flapping_notifies_once_with_keep_firing_for(clock: FakeClock) -> None:
    ev = AlertEvaluator([rule(keep_firing_for_s=300)], clock)
    events = []
    for i in range(10):  # true, false, true, false... every minute
        events += ev.evaluate([obs(errors=50 if i % 2 == 0 else 0)])
        clock.advance(60)
    assert [e.status for e in events] == ["firing"]
    for _ in range(5):  # false from now on: resolves 300 s after it first read false
        events += ev.evaluate([obs(errors=0)])
        clock.advance(60)
    assert [e.status for e in events] == ["firing", "resolved"]


def test_flapping_without_damping_notifies_each_transition(clock: FakeClock) -> None:
    ev = AlertEvaluator([rule()], clock)
    statuses = []
    for i in range(4):
        statuses += [e.status for e in ev.evaluate([obs(errors=50 if i % 2 == 0 else 0)])]
        clock.advance(60)
    assert statuses == ["firing", "resolved", "firing", "resolved"]


def test_below_min_samples_never_fires(clock: FakeClock) -> None:
    ev = AlertEvaluator([rule(min_samples=20)], clock)
    assert ev.evaluate([obs(requests=19, errors=19)]) == []
    assert ev.evaluate([obs(requests=0, errors=0)]) == []
    assert len(ev.evaluate([obs(requests=20, errors=19)])) == 1


def test_missing_data_holds_a_firing_alert_as_stale(clock: FakeClock) -> None:
    ev = AlertEvaluator([rule()], clock)
    (fired,) = ev.evaluate([obs(errors=50)])
    for missing in ([], [obs(requests=3, errors=3)], [obs(window_s=60, errors=50)]):
        clock.advance(60)
        assert ev.evaluate(missing) == []
        (active,) = ev.firing()
        assert active.stale
        assert active.value == 0.5
        assert active.since == fired.starts_at
    clock.advance(60)
    assert ev.evaluate([obs(errors=40)]) == []  # data back, still bad: no new notification
    (active,) = ev.firing()
    assert not active.stale
    assert active.value == 0.4
    (resolved,) = ev.evaluate([obs(errors=0)])
    assert resolved.status == "resolved"
    assert resolved.starts_at == fired.starts_at


def test_missing_data_resets_a_pending_alert(clock: FakeClock) -> None:
    ev = AlertEvaluator([rule(for_s=60)], clock)
    assert ev.evaluate([obs(errors=50)]) == []
    clock.advance(60)
    assert ev.evaluate([]) == []
    clock.advance(60)
    assert ev.evaluate([obs(errors=50)]) == []  # pending again from here
    clock.advance(60)
    assert len(ev.evaluate([obs(errors=50)])) == 1


def test_nan_figures_are_missing_data(clock: FakeClock) -> None:
    ev = AlertEvaluator([rule(kind="p95_latency", threshold=0.1)], clock)
    assert ev.evaluate([obs(p95_s=math.nan)]) == []
    assert ev.evaluate([obs(p95_s=None)]) == []
    (fired,) = ev.evaluate([obs(p95_s=0.412)])
    assert fired.summary == (
        "iris:1 p95 latency 412 ms over 5m, above the 100 ms threshold (100 requests)"
    )


def test_each_version_is_its_own_alert(clock: FakeClock) -> None:
    ev = AlertEvaluator([rule()], clock)
    events = ev.evaluate([obs(version="1", errors=0), obs(version="2", errors=50)])
    assert [(e.version, e.status) for e in events] == [("2", "firing")]
    clock.advance(60)
    events = ev.evaluate([obs(version="1", errors=50), obs(version="2", errors=50)])
    assert [(e.version, e.status) for e in events] == [("1", "firing")]
    assert len({a.fingerprint for a in ev.firing()}) == 2
    clock.advance(60)
    events = ev.evaluate([obs(version="1", errors=50), obs(version="2", errors=0)])
    assert [(e.version, e.status) for e in events] == [("2", "resolved")]


def test_model_and_version_scopes(clock: FakeClock) -> None:
    rules = [
        rule(name="any"),
        rule(name="iris-only", model="iris"),
        rule(name="iris-v2", model="iris", version="2"),
    ]
    ev = AlertEvaluator(rules, clock)
    events = ev.evaluate(
        [obs("iris", "1", errors=50), obs("iris", "2", errors=50), obs("wine", "7", errors=50)]
    )
    fired = sorted((e.rule, e.model, e.version) for e in events)
    assert fired == [
        ("any", "iris", "1"),
        ("any", "iris", "2"),
        ("any", "wine", "7"),
        ("iris-only", "iris", "1"),
        ("iris-only", "iris", "2"),
        ("iris-v2", "iris", "2"),
    ]


def test_observation_windows_must_match(clock: FakeClock) -> None:
    ev = AlertEvaluator([rule(window_s=60)], clock)
    assert ev.evaluate([obs(window_s=300, errors=50)]) == []
    assert len(ev.evaluate([obs(window_s=60, errors=50)])) == 1


def test_duplicate_observations_are_rejected(clock: FakeClock) -> None:
    ev = AlertEvaluator([rule()], clock)
    with pytest.raises(InvalidInputError, match="two observations for model 'iris' version '1'"):
        ev.evaluate([obs(), obs()])


def test_accuracy_fires_below_and_counts_labeled_rows(clock: FakeClock) -> None:
    ev = AlertEvaluator([rule(kind="accuracy", threshold=0.9, min_samples=50)], clock)
    assert ev.evaluate([obs(labeled=49, accuracy=0.5)]) == []
    assert ev.evaluate([obs(labeled=500, accuracy=0.95)]) == []
    (fired,) = ev.evaluate([obs(labeled=50, accuracy=0.8)])
    assert fired.summary == (
        "iris:1 accuracy 80% over 5m, below the 90% threshold (50 labeled predictions)"
    )
    (resolved,) = ev.evaluate([obs(labeled=80, accuracy=0.91)])
    assert "back above the 90% threshold" in resolved.summary


def test_drift_alerts_per_feature_and_statistic(clock: FakeClock) -> None:
    rules = [
        rule(name="psi-any", kind="drift", threshold=0.2),
        rule(name="ks-age", kind="drift", threshold=0.3, statistic="ks", feature="age"),
    ]
    ev = AlertEvaluator(rules, clock)
    drift = {
        ("age", "psi"): 0.5,
        ("income", "psi"): 0.1,
        ("city", "psi"): 0.25,
        ("age", "ks"): 0.31,
        ("income", "ks"): 0.9,  # not watched: ks-age names one feature
    }
    events = ev.evaluate([obs(drift=drift)])
    assert sorted((e.rule, e.feature, e.statistic) for e in events) == [
        ("ks-age", "age", "ks"),
        ("psi-any", "age", "psi"),
        ("psi-any", "city", "psi"),
    ]
    age = next(e for e in events if e.rule == "psi-any" and e.feature == "age")
    assert age.summary == (
        "iris:1 psi drift of feature 'age' 0.5 over 5m, above the 0.2 threshold (100 requests)"
    )
    assert len({e.fingerprint for e in events}) == 3
    clock.advance(60)
    events = ev.evaluate([obs(drift={("age", "psi"): 0.5, ("city", "psi"): 0.1})])
    # city recovered; age's ks score is missing now: the ks-age alert holds
    assert [(e.rule, e.feature, e.status) for e in events] == [("psi-any", "city", "resolved")]
    assert {(a.rule, a.feature, a.stale) for a in ev.firing()} == {
        ("ks-age", "age", True),
        ("psi-any", "age", False),
    }


def test_repeat_s_renotifies_while_firing(clock: FakeClock) -> None:
    ev = AlertEvaluator([rule(repeat_s=600)], clock)
    start = clock.now()
    statuses = []
    for _ in range(21):  # 20 minutes, every minute
        statuses += [(e.status, e.starts_at) for e in ev.evaluate([obs(errors=50)])]
        clock.advance(60)
    assert statuses == [("firing", start)] * 3  # t=0, t=600, t=1200; same alert start
    assert ev.evaluate([]) == []  # stale: missing data never re-notifies


def test_summary_of_the_rule_prefixes_the_figures(clock: FakeClock) -> None:
    ev = AlertEvaluator([rule(summary="Checkout model failing")], clock)
    (fired,) = ev.evaluate([obs(errors=50)])
    assert fired.summary.startswith("Checkout model failing: iris:1 error rate 50% over 5m")


def test_evaluator_rejects_duplicate_rule_names(clock: FakeClock) -> None:
    with pytest.raises(InvalidInputError, match="rule name 'r' is also used"):
        AlertEvaluator([rule(), rule()], clock)


# -- state across restarts -------------------------------------------------------------------------
def test_restored_state_does_not_fire_again(clock: FakeClock) -> None:
    rules = [rule(), rule(name="slow", kind="p95_latency", threshold=0.2, for_s=120)]
    ev = AlertEvaluator(rules, clock)
    (fired,) = ev.evaluate([obs(errors=50, p95_s=0.5)])  # errors fire, p95 pending
    state = json.loads(json.dumps(ev.export_state()))
    clock.advance(60)
    restored = AlertEvaluator.from_state(rules, clock, state)
    assert restored.firing() == ev.firing()
    assert restored.evaluate([obs(errors=50, p95_s=0.5)]) == []
    clock.advance(60)
    (slow,) = restored.evaluate([obs(errors=50, p95_s=0.5)])  # pending for 120 s in total
    assert slow.rule == "slow"
    (resolved,) = [e for e in restored.evaluate([obs(errors=0, p95_s=0.5)]) if e.rule == "r"]
    assert resolved.status == "resolved"
    assert resolved.starts_at == fired.starts_at


def test_a_removed_rule_resolves_its_alerts(clock: FakeClock) -> None:
    ev = AlertEvaluator([rule(name="gone"), rule(name="kept")], clock)
    assert len(ev.evaluate([obs(errors=50)])) == 2
    restored = AlertEvaluator.from_state([rule(name="kept")], clock, ev.export_state())
    clock.advance(60)
    (resolved,) = restored.evaluate([obs(errors=50)])
    assert (resolved.rule, resolved.status) == ("gone", "resolved")
    assert resolved.summary.startswith("resolved (rule removed): iris:1 error rate was 50%")
    assert [a.rule for a in restored.firing()] == ["kept"]


def test_a_narrowed_rule_resolves_alerts_outside_its_scope(clock: FakeClock) -> None:
    ev = AlertEvaluator([rule()], clock)
    assert len(ev.evaluate([obs("iris", errors=50), obs("wine", errors=50)])) == 2
    restored = AlertEvaluator.from_state([rule(model="iris")], clock, ev.export_state())
    (resolved,) = restored.evaluate([obs("iris", errors=50), obs("wine", errors=50)])
    assert (resolved.model, resolved.status) == ("wine", "resolved")
    assert "rule changed" in resolved.summary
    # a changed threshold is no change of scope: the alert stays and is judged by the new one
    again = AlertEvaluator.from_state([rule(model="iris", threshold=0.6)], clock, ev.export_state())
    events = again.evaluate([obs("iris", errors=50)])
    assert [(e.model, e.status) for e in events] == [("iris", "resolved"), ("wine", "resolved")]


@pytest.mark.parametrize(
    "state",
    [
        {},
        {"format": 99, "instances": []},
        {"format": 1, "instances": [{"rule": {}}]},
        {"format": 1, "instances": "x"},
    ],
)
def test_invalid_state_is_refused(clock: FakeClock, state: dict[str, Any]) -> None:
    with pytest.raises(InvalidInputError, match="saved alert state is not valid"):
        AlertEvaluator.from_state([rule()], clock, state)


def test_naive_timestamps_in_state_are_refused(clock: FakeClock) -> None:
    ev = AlertEvaluator([rule()], clock)
    ev.evaluate([obs(errors=50)])
    state = ev.export_state()
    state["instances"][0]["since"] = "2026-01-01T00:00:00"
    with pytest.raises(InvalidInputError, match="saved alert state"):
        AlertEvaluator.from_state([rule()], clock, state)


# -- formatting ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kind", "value", "shown"),
    [
        ("p95_latency", 0.0123, "12.3 ms"),
        ("p95_latency", 2.5, "2.5 s"),
        ("error_rate", 0.0512, "5.12%"),
        ("accuracy", 0.9, "90%"),
        ("drift", 0.21345, "0.213"),
    ],
)
def test_format_value(kind: str, value: float, shown: str) -> None:
    assert format_value(kind, value) == shown


@pytest.mark.parametrize(
    ("seconds", "shown"), [(1, "1s"), (90, "90s"), (300, "5m"), (3600, "1h"), (86400, "1d")]
)
def test_format_window(seconds: int, shown: str) -> None:
    assert format_window(seconds) == shown
