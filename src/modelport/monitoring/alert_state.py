"""The state of one alert instance, its events, and its JSON form (kept across restarts)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from modelport.monitoring.alert_events import (
    ActiveAlert,
    AlertEvent,
    AlertStatus,
    alert_fingerprint,
    instance_summary,
)
from modelport.monitoring.alert_rules import AlertRule

__all__: list[str] = []  # the evaluator's internals: not public

InstanceKey = tuple[str, str, str, str | None]
"""``(rule name, model, version, feature)``."""


@dataclass(slots=True)
class AlertInstance:
    """A pending or firing alert. ``rule`` is the rule that last evaluated it."""

    rule: AlertRule
    model: str
    version: str
    feature: str | None
    firing: bool
    pending_since: datetime
    since: datetime | None = None  # when it started firing
    value: float | None = None
    samples: int = 0
    stale: bool = False
    clear_since: datetime | None = None  # first evaluation that found the condition false
    notified_at: datetime | None = None

    @property
    def key(self) -> InstanceKey:
        return (self.rule.name, self.model, self.version, self.feature)

    @property
    def fingerprint(self) -> str:
        return alert_fingerprint(self.rule.name, self.model, self.version, self.feature)

    def event(self, status: AlertStatus, now: datetime, *, note: str | None = None) -> AlertEvent:
        rule = self.rule
        return AlertEvent(
            rule=rule.name,
            kind=rule.kind,
            severity=rule.severity,
            status=status,
            model=self.model,
            version=self.version,
            feature=self.feature,
            statistic=rule.statistic if rule.kind == "drift" else None,
            value=self.value,
            threshold=rule.threshold,
            window_s=rule.window_s,
            starts_at=self.since or now,
            ends_at=now if status == "resolved" else None,
            fingerprint=self.fingerprint,
            summary=instance_summary(
                rule,
                self.model,
                self.version,
                self.feature,
                self.value,
                status,
                samples=self.samples,
                note=note,
            ),
        )

    def active(self) -> ActiveAlert:
        return ActiveAlert(
            rule=self.rule.name,
            kind=self.rule.kind,
            severity=self.rule.severity,
            model=self.model,
            version=self.version,
            feature=self.feature,
            since=self.since or self.pending_since,
            value=self.value,
            threshold=self.rule.threshold,
            window_s=self.rule.window_s,
            stale=self.stale,
            fingerprint=self.fingerprint,
        )

    def dump(self) -> dict[str, Any]:
        """JSON-able form; ``load`` reads it back."""

        def iso(at: datetime | None) -> str | None:
            return None if at is None else at.isoformat()

        return {
            "rule": self.rule.model_dump(mode="json", exclude_defaults=True),
            "model": self.model,
            "version": self.version,
            "feature": self.feature,
            "firing": self.firing,
            "pending_since": iso(self.pending_since),
            "since": iso(self.since),
            "value": self.value,
            "samples": self.samples,
            "stale": self.stale,
            "clear_since": iso(self.clear_since),
            "notified_at": iso(self.notified_at),
        }

    @classmethod
    def load(cls, raw: Mapping[str, Any]) -> AlertInstance:
        """From ``dump()``'s output, with the rule as it was saved (the evaluator compares it with
        the current rule of that name). Raises KeyError, TypeError or ValueError."""

        def when(name: str) -> datetime | None:
            text = raw[name]
            if text is None:
                return None
            at = datetime.fromisoformat(text)
            if at.tzinfo is None:
                raise ValueError(f"{name} has no time zone")
            return at

        pending_since = when("pending_since")
        firing = raw["firing"]
        since = when("since")
        if not isinstance(firing, bool) or pending_since is None or (firing and since is None):
            raise ValueError("incomplete instance")
        value = raw["value"]
        feature = raw["feature"]
        return cls(
            rule=AlertRule.model_validate(raw["rule"]),
            model=str(raw["model"]),
            version=str(raw["version"]),
            feature=None if feature is None else str(feature),
            firing=firing,
            pending_since=pending_since,
            since=since,
            value=None if value is None else float(value),
            samples=int(raw["samples"]),
            stale=bool(raw["stale"]),
            clear_since=when("clear_since"),
            notified_at=when("notified_at"),
        )
