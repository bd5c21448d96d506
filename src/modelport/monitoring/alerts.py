"""Alert evaluation: pure state machine from observed figures to firing / resolved events.

An alert instance is ``(rule, model, version, feature)`` (``feature`` only for drift rules). Each
``evaluate`` call moves every instance along::

    inactive ──condition true──► pending ──still true after for_s──► firing
       ▲                            │                                   │
       └──condition false / no data─┘       false for keep_firing_for_s │
                                                                        ▼
                                                                    resolved
    (firing with no data: holds its last value, marked stale)

Events are emitted only on the transitions to firing and to resolved, so a condition that stays
true never notifies twice (unless the rule sets ``repeat_s``). Missing data (no observation for
the rule's window, a figure that is None or NaN, or fewer than ``min_samples`` samples) never
triggers an action: a pending instance goes back to inactive, a firing one holds. A firing alert
whose rule was removed, or changed so that the instance no longer belongs to it, resolves on the
next evaluation. ``export_state`` / ``from_state`` carry the state across a restart, so an alert
that was firing does not fire again.

Observations are matched to a rule by model (``"*"`` matches any), version (None matches any) and
``window_s`` (exactly: compute figures for each window of ``windows_needed(rules)``). ``errors``
counts server errors (the ``5xx`` status class), as the PromQL rules of ``promrules`` do.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from modelport.core.clock import Clock
from modelport.core.errors import InvalidInputError
from modelport.monitoring.alert_events import ActiveAlert, AlertEvent
from modelport.monitoring.alert_rules import AlertRule, validate_rules
from modelport.monitoring.alert_state import AlertInstance, InstanceKey

__all__ = ["AlertEvaluator", "Observation", "windows_needed"]

_STATE_FORMAT = 1


@dataclass(frozen=True, slots=True)
class Observation:
    """Figures of one model version over the last ``window_s`` seconds.

    ``requests`` and ``errors`` (5xx answers) count requests; ``p95_s`` is None without any.
    ``drift`` maps ``(feature, statistic)`` to its latest score; ``labeled`` counts predictions
    with ground truth and ``accuracy`` is their accuracy (None without any)."""

    model: str
    version: str
    window_s: int
    requests: int = 0
    errors: int = 0
    p95_s: float | None = None
    drift: Mapping[tuple[str, str], float] = field(default_factory=dict)
    labeled: int = 0
    accuracy: float | None = None


@dataclass(frozen=True, slots=True)
class _Reading:
    value: float | None  # None: missing data (no figure, or fewer samples than min_samples)
    samples: int


_MISSING = _Reading(None, 0)


def windows_needed(rules: Iterable[AlertRule]) -> list[int]:
    """The distinct ``window_s`` of ``rules``, sorted: the windows to compute observations for."""
    return sorted({rule.window_s for rule in rules})


class AlertEvaluator:
    """Keeps the state of every alert instance; ``evaluate`` is called periodically.

    Thread-safe: ``evaluate`` may run on one thread while another reads ``firing()``."""

    def __init__(self, rules: Sequence[AlertRule], clock: Clock) -> None:
        self._rules = {rule.name: rule for rule in validate_rules(list(rules))}
        self._clock = clock
        self._instances: dict[InstanceKey, AlertInstance] = {}
        self._lock = threading.Lock()

    @property
    def rules(self) -> tuple[AlertRule, ...]:
        return tuple(self._rules.values())

    def evaluate(self, observations: Iterable[Observation]) -> list[AlertEvent]:
        """Advance every instance with the latest figures; the firing / resolved events."""
        now = self._clock.now()
        readings = self._readings(_index(observations))
        events: list[AlertEvent] = []
        with self._lock:
            for key in sorted(set(self._instances) | set(readings), key=_sort_key):
                rule = self._rules.get(key[0])
                held = self._instances.get(key)
                if held is not None and (rule is None or not _applies(rule, held)):
                    del self._instances[key]
                    if held.firing:
                        note = "rule removed" if rule is None else "rule changed"
                        events.append(held.event("resolved", now, note=note))
                if rule is not None and (key in self._instances or key in readings):
                    events.extend(self._step(key, rule, readings.get(key, _MISSING), now))
        return events

    def _step(
        self, key: InstanceKey, rule: AlertRule, reading: _Reading, now: datetime
    ) -> list[AlertEvent]:
        inst = self._instances.get(key)
        value = reading.value
        breached = value is not None and rule.breached(value)
        if inst is None:
            if not breached:
                return []
            inst = AlertInstance(rule, key[1], key[2], key[3], firing=False, pending_since=now)
            self._instances[key] = inst
        inst.rule = rule
        if value is None:  # missing data never triggers an action
            if inst.firing:
                inst.stale = True
            else:
                del self._instances[key]
            return []
        inst.value, inst.samples, inst.stale = value, reading.samples, False
        if not inst.firing:
            if not breached:
                del self._instances[key]
                return []
            if _elapsed(inst.pending_since, now) < rule.for_s:
                return []
            inst.firing, inst.since, inst.notified_at = True, now, now
            return [inst.event("firing", now)]
        if breached:
            inst.clear_since = None
            if _repeat_due(rule, inst, now):
                inst.notified_at = now
                return [inst.event("firing", now)]
            return []
        if inst.clear_since is None:
            inst.clear_since = now
        if _elapsed(inst.clear_since, now) < rule.keep_firing_for_s:
            return []
        del self._instances[key]
        return [inst.event("resolved", now)]

    def _readings(
        self, index: Mapping[tuple[str, str, int], Observation]
    ) -> dict[InstanceKey, _Reading]:
        out: dict[InstanceKey, _Reading] = {}
        for rule in self._rules.values():
            for (model, version, window_s), obs in index.items():
                if window_s != rule.window_s or rule.model not in ("*", model):
                    continue
                if rule.version is not None and rule.version != version:
                    continue
                for feature, value, samples in _figures(rule, obs):
                    usable = value is not None and math.isfinite(value)
                    enough = samples >= rule.min_samples
                    shown = value if usable and enough else None
                    out[(rule.name, model, version, feature)] = _Reading(shown, samples)
        return out

    def firing(self) -> list[ActiveAlert]:
        """Every firing alert (stale ones included), oldest first."""
        with self._lock:
            active = [inst.active() for inst in self._instances.values() if inst.firing]
        return sorted(active, key=lambda a: (a.since, a.rule, a.model, a.version, a.feature or ""))

    def export_state(self) -> dict[str, Any]:
        """JSON-able state of every pending and firing instance (with the rule it came from)."""
        with self._lock:
            return {
                "format": _STATE_FORMAT,
                "instances": [inst.dump() for inst in self._instances.values()],
            }

    @classmethod
    def from_state(
        cls, rules: Sequence[AlertRule], clock: Clock, state: Mapping[str, Any]
    ) -> AlertEvaluator:
        """An evaluator for ``rules`` that continues from ``export_state()``'s output."""
        evaluator = cls(rules, clock)
        try:
            if state.get("format") != _STATE_FORMAT:
                raise ValueError("unknown state format")
            for raw in state["instances"]:
                inst = AlertInstance.load(raw)
                evaluator._instances[inst.key] = inst
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise InvalidInputError(
                "the saved alert state is not valid (written by another modelport version, or "
                "damaged); delete it to start with no active alerts"
            ) from exc
        return evaluator


def _index(observations: Iterable[Observation]) -> dict[tuple[str, str, int], Observation]:
    index: dict[tuple[str, str, int], Observation] = {}
    for obs in observations:
        key = (obs.model, obs.version, obs.window_s)
        if key in index:
            raise InvalidInputError(
                f"two observations for model {obs.model!r} version {obs.version!r} over "
                f"{obs.window_s}s; add them up into one per model version and window"
            )
        index[key] = obs
    return index


def _figures(rule: AlertRule, obs: Observation) -> list[tuple[str | None, float | None, int]]:
    """``(feature, value, samples)`` of ``rule`` in ``obs``."""
    if rule.kind == "p95_latency":
        return [(None, obs.p95_s, obs.requests)]
    if rule.kind == "error_rate":
        rate = obs.errors / obs.requests if obs.requests > 0 else None
        return [(None, rate, obs.requests)]
    if rule.kind == "accuracy":
        return [(None, obs.accuracy, obs.labeled)]
    if rule.feature is not None:
        return [(rule.feature, obs.drift.get((rule.feature, rule.statistic)), obs.requests)]
    return [
        (feature, score, obs.requests)
        for (feature, statistic), score in obs.drift.items()
        if statistic == rule.statistic
    ]


def _applies(rule: AlertRule, inst: AlertInstance) -> bool:
    """Whether an instance created by ``inst.rule`` still belongs to ``rule`` (same name)."""
    old = inst.rule
    return (
        rule.kind == old.kind
        and rule.statistic == old.statistic
        and rule.model in ("*", inst.model)
        and rule.version in (None, inst.version)
        and rule.feature in (None, inst.feature)
    )


def _repeat_due(rule: AlertRule, inst: AlertInstance, now: datetime) -> bool:
    if rule.repeat_s is None or inst.notified_at is None:
        return False
    return _elapsed(inst.notified_at, now) >= rule.repeat_s


def _elapsed(start: datetime, now: datetime) -> float:
    return (now - start).total_seconds()


def _sort_key(key: InstanceKey) -> tuple[str, str, str, str]:
    return (key[0], key[1], key[2], key[3] or "")
