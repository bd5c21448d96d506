"""modelport.monitoring: what a deployed model does. Pure statistics (windows, sketches,
drift, accuracy, alert rules; clock injected) and the adapters that record it (prediction log,
alert log, webhook), which get their database URL or engine from the edge."""

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
from modelport.monitoring.alert_events import (
    ActiveAlert,
    AlertEvent,
    AlertStatus,
    alert_fingerprint,
)
from modelport.monitoring.alert_rules import (
    AlertKind,
    AlertRule,
    DriftStatistic,
    Severity,
    load_rules,
    validate_rules,
)
from modelport.monitoring.alertlog import ALERT_EVENTS_TABLE, AlertLog, AlertRecord
from modelport.monitoring.alerts import AlertEvaluator, Observation, windows_needed
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
from modelport.monitoring.feedback import FeedbackItem, parse_feedback_csv, parse_feedback_json
from modelport.monitoring.notify import NotifierStats, WebhookNotifier
from modelport.monitoring.predlog import (
    LogStats,
    PredictionLog,
    PredictionRecord,
    PredictionSink,
    check_sample_rate,
    sample_in,
)
from modelport.monitoring.promrules import (
    prometheus_alert_name,
    prometheus_rules,
    promql_expression,
    promql_string,
)
from modelport.monitoring.sketch import LatencySketch
from modelport.monitoring.webhook import (
    WebhookTarget,
    check_addresses,
    parse_webhook_url,
    webhook_payload,
)
from modelport.monitoring.windows import RollingWindow, WindowKey, WindowStats

__all__ = [
    "ALERT_EVENTS_TABLE",
    "AccuracyStats",
    "ActiveAlert",
    "AlertEvaluator",
    "AlertEvent",
    "AlertKind",
    "AlertLog",
    "AlertRecord",
    "AlertRule",
    "AlertStatus",
    "DiffInterval",
    "DriftStatistic",
    "DriftThresholds",
    "FeatureDrift",
    "FeedbackItem",
    "LabeledPrediction",
    "LatencySketch",
    "LogStats",
    "NotifierStats",
    "Observation",
    "PredictionLog",
    "PredictionRecord",
    "PredictionSink",
    "RollingWindow",
    "Severity",
    "Verdict",
    "WebhookNotifier",
    "WebhookTarget",
    "WindowAccuracy",
    "WindowKey",
    "WindowStats",
    "accuracy_by_version",
    "accuracy_by_window",
    "accuracy_stats",
    "alert_fingerprint",
    "check_addresses",
    "check_sample_rate",
    "chi_squared",
    "dataset_drift",
    "feature_drift",
    "ks",
    "labels_equal",
    "load_rules",
    "parse_feedback_csv",
    "parse_feedback_json",
    "parse_webhook_url",
    "prediction_drift",
    "prometheus_alert_name",
    "prometheus_rules",
    "promql_expression",
    "promql_string",
    "proportion_diff_ci",
    "psi",
    "sample_in",
    "validate_rules",
    "webhook_payload",
    "wilson_interval",
    "windows_needed",
]
