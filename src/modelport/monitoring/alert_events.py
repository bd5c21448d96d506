"""What alert evaluation produces: events (firing / resolved) and the list of active alerts."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from modelport.monitoring.alert_rules import AlertKind, AlertRule, Severity

# format_value, format_window and instance_summary are shared with the other alert modules.
__all__ = ["ActiveAlert", "AlertEvent", "AlertStatus", "alert_fingerprint"]

AlertStatus = Literal["firing", "resolved"]

_WHAT: dict[str, str] = {
    "p95_latency": "p95 latency",
    "error_rate": "error rate",
    "accuracy": "accuracy",
}


@dataclass(frozen=True, slots=True)
class AlertEvent:
    """A transition of one alert instance to firing or to resolved.

    ``starts_at`` is when it started firing; ``ends_at`` when it resolved (None while firing).
    ``fingerprint`` identifies the instance (rule, model, version, feature) across events."""

    rule: str
    kind: AlertKind
    severity: Severity
    status: AlertStatus
    model: str
    version: str
    feature: str | None
    statistic: str | None
    value: float | None
    threshold: float
    window_s: int
    starts_at: datetime
    ends_at: datetime | None
    fingerprint: str
    summary: str

    def to_json(self) -> dict[str, Any]:
        """The JSON form the server's alert routes and the CLI print (``since`` =
        ``starts_at``, times in ISO 8601)."""
        return {
            "rule": self.rule,
            "kind": self.kind,
            "severity": self.severity,
            "status": self.status,
            "model": self.model,
            "version": self.version,
            "feature": self.feature,
            "statistic": self.statistic,
            "value": self.value,
            "threshold": self.threshold,
            "window_s": self.window_s,
            "since": self.starts_at.isoformat(),
            "starts_at": self.starts_at.isoformat(),
            "ends_at": None if self.ends_at is None else self.ends_at.isoformat(),
            "fingerprint": self.fingerprint,
            "summary": self.summary,
        }


@dataclass(frozen=True, slots=True)
class ActiveAlert:
    """A firing alert. ``stale``: its figures are missing now; it holds its last ``value``."""

    rule: str
    kind: AlertKind
    severity: Severity
    model: str
    version: str
    feature: str | None
    since: datetime
    value: float | None
    threshold: float
    window_s: int
    stale: bool
    fingerprint: str


def alert_fingerprint(rule: str, model: str, version: str, feature: str | None) -> str:
    """Stable identity of an alert instance: 16 hex digits of the sha256 of its parts."""
    raw = "\x1f".join((rule, model, version, feature or "")).encode()
    return hashlib.sha256(raw).hexdigest()[:16]


def format_window(seconds: int) -> str:
    """``300`` → ``5m``; ``3600`` → ``1h``; ``90`` → ``90s``."""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def format_value(kind: str, value: float) -> str:
    """A figure in the unit of its kind: ``412 ms``, ``2.5%``, ``0.213``."""
    if kind == "p95_latency":
        return f"{value * 1000:.3g} ms" if value < 1 else f"{value:.3g} s"
    if kind in ("error_rate", "accuracy"):
        return f"{value * 100:.3g}%"
    return f"{value:.3g}"


def instance_summary(
    rule: AlertRule,
    model: str,
    version: str,
    feature: str | None,
    value: float | None,
    status: AlertStatus,
    *,
    samples: int = 0,
    note: str | None = None,
) -> str:
    """One sentence with the figures, e.g. ``iris:3 p95 latency 412 ms over 5m, above the 250 ms
    threshold (523 requests)``; prefixed by the rule's own summary when it has one."""
    what = _WHAT.get(rule.kind) or f"{rule.statistic} drift of feature {feature!r}"
    subject = f"{model}:{version} {what}"
    window = format_window(rule.window_s)
    threshold = format_value(rule.kind, rule.threshold)
    shown = "no data" if value is None else format_value(rule.kind, value)
    side = "below" if rule.fires_below else "above"
    if note is not None:
        text = f"resolved ({note}): {subject} was {shown} over {window}"
    elif status == "resolved":
        back = "above" if rule.fires_below else "below"
        text = f"resolved: {subject} {shown} over {window}, back {back} the {threshold} threshold"
    else:
        unit = "labeled predictions" if rule.kind == "accuracy" else "requests"
        text = f"{subject} {shown} over {window}, {side} the {threshold} threshold"
        text += f" ({samples} {unit})"
    return f"{rule.summary}: {text}" if rule.summary else text
