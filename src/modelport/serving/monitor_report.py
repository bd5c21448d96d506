"""The JSON shapes of the monitoring routes (pure functions over monitoring values).

Verdicts on the wire are ``"ok"``, ``"drift"`` and ``"insufficient data"``. A drift entry names
one statistic and its score: PSI (the figure the verdict thresholds), with the p-value of the
test that backs it (KS for numeric features, chi-squared for categorical ones) and the reason.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from modelport.monitoring.accuracy import AccuracyStats
from modelport.monitoring.alert_events import ActiveAlert, AlertEvent
from modelport.monitoring.alertlog import AlertRecord
from modelport.monitoring.drift import FeatureDrift
from modelport.monitoring.windows import RollingWindow, WindowStats

__all__ = [
    "PREDICTION_FEATURE",
    "accuracy_entry",
    "active_alert_entry",
    "drift_scores",
    "drift_summary",
    "event_entry",
    "feature_entry",
    "record_entry",
    "status_document",
    "verdict",
    "version_entry",
]

#: The name prediction drift goes by (in ``drifted``, the drift gauge and alert observations).
PREDICTION_FEATURE = "prediction"


def verdict(value: str) -> str:
    return "insufficient data" if value == "insufficient_data" else value


def feature_entry(d: FeatureDrift, name: str | None = None) -> dict[str, Any]:
    return {
        "feature": name or d.name,
        "kind": d.kind,
        "statistic": "psi",
        "score": d.psi,
        "p_value": d.p_value,
        "verdict": verdict(d.verdict),
        "reason": d.reason,
    }


def drift_scores(
    features: Sequence[FeatureDrift], prediction: FeatureDrift | None
) -> dict[tuple[str, str], float]:
    """``(feature, statistic) -> score`` of every figure computed (psi, ks, chi2)."""
    out: dict[tuple[str, str], float] = {}
    named = [(d.name, d) for d in features]
    if prediction is not None:
        named.append((PREDICTION_FEATURE, prediction))
    for name, d in named:
        for statistic, score in (("psi", d.psi), ("ks", d.ks_stat), ("chi2", d.chi2)):
            if score is not None:
                out[(name, statistic)] = float(score)
    return out


def drift_summary(
    features: Sequence[FeatureDrift], prediction: FeatureDrift | None, window_s: int
) -> dict[str, Any]:
    """The status' drift figure: "drift" when a feature (or the prediction) drifted, "ok"
    when at least one could be judged and none drifted, else "insufficient data"."""
    judged = [(d.name, d) for d in features]
    if prediction is not None:
        judged.append((PREDICTION_FEATURE, prediction))
    drifted = [name for name, d in judged if d.verdict == "drift"]
    if drifted:
        overall = "drift"
    elif any(d.verdict == "ok" for _, d in judged):
        overall = "ok"
    else:
        overall = "insufficient data"
    return {"verdict": overall, "drifted": drifted, "window_s": window_s}


def accuracy_entry(stats: AccuracyStats, window_s: int) -> dict[str, Any] | None:
    """None without labeled predictions; ``value`` is the accuracy (classification only)."""
    if stats.count == 0:
        return None
    return {
        "value": stats.accuracy,
        "labeled": stats.count,
        "window_s": window_s,
        "task": stats.task,
        "mae": stats.mae,
        "rmse": stats.rmse,
    }


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else seconds * 1000.0


def version_entry(
    model: str,
    version: str,
    state: str,
    stats: WindowStats,
    model_requests: int,
    figures: Mapping[str, Any] | None,
) -> dict[str, Any]:
    """One version of ``/v2/monitoring/status``; ``figures`` holds its ``accuracy`` and
    ``drift`` from the last evaluation (None before the first one)."""
    figures = figures or {}
    return {
        "model": model,
        "version": version,
        "state": state,
        "traffic_share": stats.count / model_requests if model_requests else 0.0,
        "requests": stats.count,
        "rate_per_s": stats.rate_per_s,
        "p50_ms": _ms(stats.p50),
        "p95_ms": _ms(stats.p95),
        "p99_ms": _ms(stats.p99),
        "error_rate": stats.error_rate,
        "accuracy": figures.get("accuracy"),
        "drift": figures.get("drift"),
    }


def active_alert_entry(alert: ActiveAlert) -> dict[str, Any]:
    return {
        "rule": alert.rule,
        "kind": alert.kind,  # the unit of value and threshold
        "severity": alert.severity,
        "model": alert.model,
        "version": alert.version,
        "feature": alert.feature,
        "value": alert.value,
        "threshold": alert.threshold,
        "since": alert.since.isoformat(),
        "stale": alert.stale,
    }


def event_entry(event: AlertEvent) -> dict[str, Any]:
    """An alert event as ``/v2/monitoring/alerts`` lists it (``since`` = ``starts_at``)."""
    return event.to_json()


def record_entry(record: AlertRecord) -> dict[str, Any]:
    return {
        "id": record.id,
        "recorded_at": record.recorded_at.isoformat(),
        **event_entry(record.event),
    }


def _order(key: tuple[str, str]) -> tuple[str, int, str]:
    model, version = key
    return (model, int(version) if version.isdigit() else -1, version)


def status_document(
    now: datetime,
    window_s: int,
    ready: bool,
    window: RollingWindow,
    states: Mapping[tuple[str, str], str],
    evaluation: Mapping[str, Any] | None,
) -> dict[str, Any]:
    """``/v2/monitoring/status``: every version served here (``states``: its state) or with
    requests in ``window`` (merged over workers; a version no longer served is "retired"),
    with the accuracy, drift and firing alerts of the latest ``evaluation``."""
    figures = {
        (str(v["model"]), str(v["version"])): v for v in (evaluation or {}).get("versions", [])
    }
    in_window = window.keys()
    keys = {(k[1], k[2]) for k in in_window} | set(states)
    stats = {key: window.snapshot((key[0], key[0], key[1])) for key in keys}
    per_model: Counter[str] = Counter()
    for (model, _), figure in stats.items():
        per_model[model] += figure.count
    return {
        "window_s": window_s,
        "generated_at": now.isoformat(),
        "ready": ready,
        "versions": [
            version_entry(
                model,
                version,
                states.get((model, version), "retired"),
                stats[(model, version)],
                per_model[model],
                figures.get((model, version)),
            )
            for model, version in sorted(keys, key=_order)
        ],
        "alerts": list((evaluation or {}).get("alerts", [])),
    }
