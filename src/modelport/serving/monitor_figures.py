"""The figures of the periodic evaluation: drift and accuracy per version, and the alert
observations made of them and of the rolling windows.

Reading the prediction log blocks: the monitor calls ``compute_figures`` from a thread.
Prediction drift compares the logged outputs with the version's own predictions on the
reference sample of its profile (computed once per version through its batcher,
``reference_predictions``).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd

from modelport.core.errors import InvalidInputError, ModelportError
from modelport.core.examples import decode
from modelport.core.profile import DatasetProfile
from modelport.monitoring.accuracy import AccuracyStats, accuracy_stats
from modelport.monitoring.alert_events import ActiveAlert
from modelport.monitoring.alerts import Observation
from modelport.monitoring.drift import (
    DriftThresholds,
    FeatureDrift,
    dataset_drift,
    prediction_drift,
)
from modelport.monitoring.logstore import PREFERRED_OUTPUTS, SqlPredictionStore
from modelport.monitoring.metrics import ServingMetrics
from modelport.monitoring.windows import RollingWindow
from modelport.serving.adapt import frame_for_signature
from modelport.serving.manager import Served
from modelport.serving.monitor_report import (
    PREDICTION_FEATURE,
    accuracy_entry,
    active_alert_entry,
    drift_scores,
    drift_summary,
)

__all__ = [
    "DRIFT_ROWS",
    "DriftResult",
    "Figures",
    "Reference",
    "Target",
    "compute_accuracy",
    "compute_drift",
    "compute_figures",
    "evaluation_document",
    "observations",
    "reference_predictions",
    "set_gauges",
]

log = logging.getLogger("modelport.serving")
#: The newest logged rows compared for drift, at most.
DRIFT_ROWS = 10_000


@dataclass(frozen=True, slots=True)
class Reference:
    """The version's predictions on its reference sample, for the output drift is watched on."""

    output: str
    values: np.ndarray[Any, Any]


@dataclass(frozen=True, slots=True)
class DriftResult:
    rows: int
    features: tuple[FeatureDrift, ...]
    prediction: FeatureDrift | None


@dataclass(frozen=True, slots=True)
class Target:
    """A version to compute figures for (``profile`` None: no drift)."""

    model: str
    version: str
    profile: DatasetProfile | None = None
    reference: Reference | None = None


@dataclass(frozen=True, slots=True)
class Figures:
    """Drift and accuracy by ``(model, version, window_s)``; absent: nothing to compute it on
    (no reference profile, no labeled prediction)."""

    drift: Mapping[tuple[str, str, int], DriftResult]
    accuracy: Mapping[tuple[str, str, int], AccuracyStats]


def _pick_output(outputs: Mapping[str, Any]) -> Reference | None:
    """The first of ``PREFERRED_OUTPUTS`` (else any output) with one value per row."""
    arrays = {name: np.asarray(values) for name, values in outputs.items()}
    usable = {
        name: a.reshape(-1) if a.ndim == 2 and a.shape[1] == 1 else a
        for name, a in arrays.items()
        if a.ndim == 1 or (a.ndim == 2 and a.shape[1] == 1)
    }
    for name in (*PREFERRED_OUTPUTS, *usable):
        if name in usable:
            return Reference(name, usable[name])
    return None


async def reference_predictions(served: Served) -> Reference | None:
    """What ``served`` predicts for the sample of its reference profile (None without one)."""
    version, batcher = served.version, served.batcher
    if version is None or batcher is None or version.profile is None:
        return None
    if not version.profile.sample:
        return None
    sample = decode(version.profile.sample)
    if isinstance(sample, pd.DataFrame):
        sample = frame_for_signature(sample, version.signature, version.name)
    outputs = await batcher.submit(sample, None)
    return _pick_output(outputs)


def compute_drift(
    store: SqlPredictionStore,
    model: str,
    version: str,
    profile: DatasetProfile,
    since: datetime,
    thresholds: DriftThresholds,
    reference: Reference | None,
) -> DriftResult:
    """Drift of the inputs (and predictions) ``model:version`` logged since ``since``."""
    frame = store.recent_inputs(model, version, since=since, limit=DRIFT_ROWS)
    features = tuple(dataset_drift(profile, frame, thresholds))
    prediction = None
    if reference is not None:
        outputs = store.recent_outputs(model, version, since=since, limit=DRIFT_ROWS)
        current = outputs[reference.output] if reference.output in outputs.columns else []
        try:
            prediction = prediction_drift(
                reference.values, np.asarray(current, dtype=object), thresholds, PREDICTION_FEATURE
            )
        except InvalidInputError as exc:
            log.warning("prediction drift of %s:%s not computed: %s", model, version, exc)
    return DriftResult(len(frame), features, prediction)


def compute_accuracy(
    store: SqlPredictionStore, model: str, windows: Sequence[int], now: datetime
) -> dict[tuple[str, int], AccuracyStats]:
    """Accuracy (or MAE/RMSE) per ``(version, window_s)`` of the predictions of ``model`` made
    in the last ``window_s`` seconds that have ground truth; one task for the whole model."""
    if not windows:
        return {}
    records = store.labeled(model, since=now - timedelta(seconds=max(windows)))
    if not records:
        return {}
    task = accuracy_stats((r.prediction, r.label) for r in records).task
    groups: dict[tuple[str, int], list[tuple[Any, Any]]] = defaultdict(list)
    for length in windows:
        cutoff = now - timedelta(seconds=length)
        for r in records:
            if r.predicted_at >= cutoff:
                groups[(r.version, length)].append((r.prediction, r.label))
    return {key: accuracy_stats(pairs, task) for key, pairs in groups.items()}


def compute_figures(
    store: SqlPredictionStore,
    targets: Sequence[Target],
    drift_windows: Sequence[int],
    accuracy_windows: Sequence[int],
    thresholds: DriftThresholds,
    now: datetime,
) -> Figures:
    """Drift and accuracy of every target over every window; a version whose figures cannot
    be computed (its log unreadable, say) is logged and left out, the others go on."""
    drift: dict[tuple[str, str, int], DriftResult] = {}
    accuracy: dict[tuple[str, str, int], AccuracyStats] = {}
    for t in targets:
        if t.profile is None:
            continue
        for length in drift_windows:
            since = now - timedelta(seconds=length)
            try:
                result = compute_drift(
                    store, t.model, t.version, t.profile, since, thresholds, t.reference
                )
            except ModelportError as exc:
                log.warning("drift of %s:%s not computed: %s", t.model, t.version, exc)
                break
            drift[(t.model, t.version, length)] = result
    for model in sorted({t.model for t in targets}):
        try:
            stats = compute_accuracy(store, model, accuracy_windows, now)
        except ModelportError as exc:
            log.warning("accuracy of %s not computed: %s", model, exc)
            continue
        for (version, length), figures in stats.items():
            accuracy[(model, version, length)] = figures
    return Figures(drift, accuracy)


def observations(
    windows: Mapping[int, RollingWindow],
    versions: Sequence[tuple[str, str]],
    figures: Figures,
    lengths: Sequence[int],
) -> list[Observation]:
    """What the alert rules see: per version and window length, the requests, 5xx errors and
    p95 of the merged rolling window, the drift scores and the accuracy over that window."""
    out = []
    for length in lengths:
        window = windows.get(length)
        for model, version in versions:
            stats = window.snapshot((model, model, version)) if window is not None else None
            drift = figures.drift.get((model, version, length))
            accuracy = figures.accuracy.get((model, version, length))
            out.append(
                Observation(
                    model=model,
                    version=version,
                    window_s=length,
                    requests=stats.count if stats is not None else 0,
                    errors=stats.errors if stats is not None else 0,
                    p95_s=stats.p95 if stats is not None else None,
                    drift=drift_scores(drift.features, drift.prediction) if drift else {},
                    labeled=accuracy.count if accuracy is not None else 0,
                    accuracy=accuracy.accuracy if accuracy is not None else None,
                )
            )
    return out


def set_gauges(metrics: ServingMetrics, figures: Figures, drift_window_s: int) -> None:
    """``modelport_accuracy`` (classification) for every window, ``modelport_drift_score`` of
    every feature and statistic over ``drift_window_s``."""
    for (model, version, length), stats in figures.accuracy.items():
        if stats.accuracy is not None:
            metrics.accuracy.labels(model, version, f"{length}s").set(stats.accuracy)
    for (model, version, length), result in figures.drift.items():
        if length == drift_window_s:
            for (feature, statistic), score in drift_scores(
                result.features, result.prediction
            ).items():
                metrics.drift_score.labels(model, version, feature, statistic).set(score)


def evaluation_document(
    now: datetime,
    versions: Sequence[tuple[str, str]],
    figures: Figures,
    drift_window_s: int,
    accuracy_window_s: int,
    firing: Sequence[ActiveAlert],
) -> dict[str, Any]:
    """The latest evaluation as the status shows it (shared with sibling workers as JSON)."""

    def accuracy(model: str, version: str) -> dict[str, Any] | None:
        stats = figures.accuracy.get((model, version, accuracy_window_s))
        return accuracy_entry(stats, accuracy_window_s) if stats is not None else None

    def drift(model: str, version: str) -> dict[str, Any] | None:
        result = figures.drift.get((model, version, drift_window_s))
        if result is None:
            return None
        return drift_summary(result.features, result.prediction, drift_window_s)

    return {
        "generated_at": now.isoformat(),
        "versions": [
            {"model": m, "version": v, "accuracy": accuracy(m, v), "drift": drift(m, v)}
            for m, v in versions
        ],
        "alerts": [active_alert_entry(a) for a in firing],
    }
