"""modelport.monitoring: pure statistics of what a deployed model does (no I/O, clock injected)."""

from modelport.monitoring.accuracy import (
    AccuracyStats,
    DiffInterval,
    LabeledPrediction,
    WindowAccuracy,
    accuracy_by_version,
    accuracy_by_window,
    accuracy_stats,
    labels_equal,
    proportion_diff_ci,
    wilson_interval,
)
from modelport.monitoring.drift import (
    DriftThresholds,
    FeatureDrift,
    Verdict,
    chi_squared,
    dataset_drift,
    feature_drift,
    ks,
    prediction_drift,
    psi,
)
from modelport.monitoring.sketch import LatencySketch
from modelport.monitoring.windows import RollingWindow, WindowKey, WindowStats

__all__ = [
    "AccuracyStats",
    "DiffInterval",
    "DriftThresholds",
    "FeatureDrift",
    "LabeledPrediction",
    "LatencySketch",
    "RollingWindow",
    "Verdict",
    "WindowAccuracy",
    "WindowKey",
    "WindowStats",
    "accuracy_by_version",
    "accuracy_by_window",
    "accuracy_stats",
    "chi_squared",
    "dataset_drift",
    "feature_drift",
    "ks",
    "labels_equal",
    "prediction_drift",
    "proportion_diff_ci",
    "psi",
    "wilson_interval",
]
