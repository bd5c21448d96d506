from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from modelport.core.deployment import parse_spec
from modelport.core.errors import InvalidInputError
from modelport.rollout import (
    Promote,
    Record,
    Rollback,
    SetWeights,
    StartShadow,
    StopShadow,
    Tick,
    new_rollout,
    step,
)
from modelport.rollout.outbox import (
    AliasMoveIntent,
    Outbox,
    Transition,
    document,
    effects,
    load,
)

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
SPEC = parse_spec(
    "endpoint: fraud\nbaseline: fraud@champion\ncandidate: fraud:4\n"
    "strategy: {kind: canary, steps: [10, 100]}\n"
)


def test_an_outbox_survives_json_and_rides_along_with_the_state() -> None:
    outbox = Outbox(
        "fraud",
        (3, 4),
        "controller/abc",
        T0,
        traffic=(StopShadow(), SetWeights(70, 30, "header:x-user"), StartShadow(0.2, 500.0)),
        aliases=(AliasMoveIntent("fraud", "champion", 4, "passed"),),
    )
    assert Outbox.from_dict(json.loads(json.dumps(outbox.to_dict()))) == outbox
    state = new_rollout(SPEC, baseline_version=3, candidate_version=4, now=T0)
    saved = json.loads(json.dumps(document(state, outbox)))
    assert load(saved) == (state, outbox)
    assert load(document(state)) == (state, None)
    assert "outbox" not in document(state, Outbox("fraud", (3, 4), "c", T0))  # empty: none


def test_a_corrupt_outbox_is_refused_with_its_endpoint() -> None:
    state = new_rollout(SPEC, baseline_version=3, candidate_version=4, now=T0)
    bad = dict(document(state), outbox={"endpoint": "fraud", "versions": [3, 4]})
    with pytest.raises(InvalidInputError, match="outbox of endpoint 'fraud' is corrupt"):
        load(bad)


def test_effects_of_transitions() -> None:
    pending = new_rollout(SPEC, baseline_version=3, candidate_version=4, now=T0)
    smoke, actions = step(pending, Tick(), T0)
    begun = Transition(pending, smoke, tuple(actions), "controller", T0)
    rollback = (Rollback("bad"), Record("rollout.rolled_back", "bad"))
    failed = Transition(smoke, smoke, rollback, "alice", T0)
    promoted = Transition(smoke, smoke, (Promote(None, 4),), "controller", T0)
    traffic, aliases, events = effects("fraud", [begun, failed, promoted])
    assert traffic == (StopShadow(), SetWeights(100, 0), StopShadow(), SetWeights(100, 0))
    assert aliases == ()  # no alias to move
    assert [(e.kind, e.phase_from, e.phase_to, e.actor) for e in events] == [
        ("rollout.started", "pending", "smoke", "controller"),
        ("rollout.phase_changed", "pending", "smoke", "controller"),
        ("rollout.rolled_back", "smoke", "smoke", "alice"),
    ]
