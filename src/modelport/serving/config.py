"""Server settings, validated once at the edge and passed down to every component."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from modelport.core.refs import ModelRef

__all__ = ["LogFormat", "LogLevel", "LogWriter", "MonitoringConfig", "ServeConfig"]

LogFormat = Literal["text", "json"]
LogLevel = Literal["debug", "info", "warning", "error"]
LogWriter = Literal["thread", "process"]
_MAX_WINDOW_S = 30 * 24 * 3600


class MonitoringConfig(BaseModel):
    """What the server watches: rolling windows, the prediction log, drift, accuracy, alerts.

    Self-contained (plain values only) so that a deployment spec can embed it as it is."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    enabled: bool = Field(
        default=True,
        description="Rolling-window figures, the prediction log, drift, accuracy and alerts. "
        "Off: none of them, and the monitoring routes answer 404.",
    )
    prediction_log: bool = Field(
        default=True,
        description="Record predictions (inputs, outputs, latency) in the prediction log; "
        "feedback, accuracy and drift need it.",
    )
    log_sample_rate: float = Field(
        default=1.0,
        ge=0.0,
        le=1.0,
        description="Share of requests recorded, chosen by a hash of the request id.",
    )
    redact: tuple[str, ...] = Field(
        default=(),
        description="Input or output fields (case-insensitive) whose values are never written "
        "to the prediction log.",
    )
    log_url: str | None = Field(
        default=None,
        description="Database of the prediction log and the alert log (sqlite:///PATH or "
        "postgresql+psycopg://...). Default: the registry's PostgreSQL database when it has "
        "one, else monitoring.db under the modelport home.",
    )
    log_writer: LogWriter = Field(
        default="thread",
        description="Where records are converted and written: a thread of each worker (no "
        "extra memory; it shares the worker's GIL, about 45 us of it per record), or a child "
        "process per worker (about 5 us per record here, ~125 MB more memory): for "
        "thousands of requests per second per worker.",
    )
    log_capacity: int = Field(
        default=10_000,
        ge=1,
        le=10_000_000,
        description="Records waiting to be written before new ones are dropped (and counted "
        "in modelport_prediction_log_dropped_total).",
    )
    window_s: int = Field(
        default=300,
        ge=1,
        le=_MAX_WINDOW_S,
        description="Rolling window of the live latency, rate and error-rate figures.",
    )
    drift_window_s: int = Field(
        default=3600, ge=1, le=_MAX_WINDOW_S, description="Logged inputs compared for drift."
    )
    accuracy_window_s: int = Field(
        default=3600,
        ge=1,
        le=_MAX_WINDOW_S,
        description="Predictions (by the time they were made) whose labels make the accuracy.",
    )
    drift_psi: float = Field(
        default=0.2, gt=0, description="PSI at or above which a feature may be drifted."
    )
    drift_p_value: float = Field(
        default=0.01,
        gt=0,
        lt=1,
        description="The KS / chi-squared p-value below which a PSI above drift_psi is drift.",
    )
    drift_min_samples: int = Field(
        default=30, ge=1, description="Fewer logged values give 'insufficient data'."
    )
    alert_rules: str | None = Field(
        default=None, description="YAML file of alert rules ({rules: [...]})."
    )
    webhook_url: str | None = Field(
        default=None, description="Where firing and resolved alerts are posted (Alertmanager v4)."
    )
    webhook_allowed_hosts: tuple[str, ...] = Field(
        default=(),
        description="Hosts the webhook may reach (exact names, *.suffix patterns, IPs); "
        "required with webhook_url.",
    )
    evaluate_interval_s: float = Field(
        default=15.0,
        gt=0,
        le=3600,
        description="How often drift, accuracy and alert rules are evaluated.",
    )

    @model_validator(mode="after")
    def _webhook_needs_hosts(self) -> MonitoringConfig:
        if self.webhook_url is not None and not self.webhook_allowed_hosts:
            raise ValueError(
                "a webhook URL needs the hosts it may reach: list the receiver's host in "
                "webhook_allowed_hosts (--webhook-allow-host HOST)"
            )
        return self


class ServeConfig(BaseModel):
    """How ``modelport serve`` runs. Everything here is safe to pass to worker processes."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    refs: tuple[str, ...] = Field(description="Model refs to serve (NAME, NAME:N, NAME@ALIAS).")
    host: str = Field(default="127.0.0.1", description="Address to bind the data plane to.")
    port: int = Field(default=8080, ge=0, le=65535, description="Data plane port (0: any free).")
    grpc_port: int | None = Field(
        default=None, ge=0, le=65535, description="Port of the V2 gRPC service (None: off)."
    )
    workers: int = Field(default=1, ge=1, le=64, description="Worker processes sharing the port.")
    threads: int | None = Field(
        default=None,
        ge=1,
        le=256,
        description="Framework intra-op threads per model (OpenMP/BLAS/onnxruntime). "
        "Default 1: parallelism comes from workers and batching.",
    )
    batching: bool = Field(default=True, description="Adaptive batching for batchable runtimes.")
    max_batch_size: int = Field(default=64, ge=1, le=100_000, description="Rows per batch.")
    max_batch_wait_ms: float = Field(default=2.0, ge=0, le=10_000)
    max_queue: int = Field(
        default=512,
        ge=1,
        le=1_000_000,
        description="Waiting requests per version before new ones are shed with 503 + Retry-After.",
    )
    max_body_bytes: int = Field(
        default=8 * 1024 * 1024, ge=1024, description="Largest request body."
    )
    max_inflight: int = Field(default=1024, ge=1, description="Concurrent requests per worker.")
    default_timeout_s: float | None = Field(
        default=None, gt=0, description="Deadline when a request sets none."
    )
    poll_interval_s: float = Field(
        default=2.0,
        gt=0,
        le=3600,
        description="How often served aliases are re-resolved (alias moves swap versions).",
    )
    grace_period_s: float = Field(
        default=20.0,
        ge=0,
        le=3600,
        description="On SIGTERM: time for in-flight requests to finish before exit.",
    )
    variant: str = Field(
        default="auto", description="auto (verified fast path when present), original, or onnx."
    )
    metrics_interval_s: float = Field(
        default=1.0,
        gt=0,
        le=60,
        description="With several workers: how often each refreshes its queue-depth and "
        "readiness gauges for /metrics (one worker refreshes them on every scrape).",
    )

    endpoints: tuple[str, ...] = Field(
        default=(),
        description="Recorded endpoints (deployment specs) to route, besides those whose model "
        "is served.",
    )
    follow_deployments: bool = Field(
        default=True,
        description="Route the recorded endpoints of the served models by their published "
        "route tables (rollouts); off: every name answers with its served ref's version.",
    )
    rollouts: bool = Field(
        default=True,
        description="Run the rollout controller in this server (one process per modelport "
        "home runs it; the others stand by).",
    )
    rollout_interval_s: float = Field(
        default=1.0, gt=0, le=3600, description="Seconds between rollout controller ticks."
    )
    monitoring: MonitoringConfig = Field(
        default_factory=MonitoringConfig, description="Monitoring of the served versions."
    )
    log_format: LogFormat = Field(
        default="text",
        description="text (human-readable lines) or json (one JSON object per record, with "
        "the request id).",
    )
    log_level: LogLevel = Field(
        default="info", description="Level of modelport's own loggers (others log warnings)."
    )
    access_log: bool = Field(
        default=False,
        description="Log one line per prediction request (method, path, status, latency, "
        "model, version, request id; never payload values).",
    )

    @field_validator("refs")
    @classmethod
    def _refs(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value:
            raise ValueError("serve at least one model ref")
        for ref in value:
            ModelRef.parse(ref)
        return value

    def framework_threads(self) -> int:
        """Intra-op threads per model: 1 unless set. Parallelism comes from worker processes
        and batching; more framework threads on shared cores fight the event loop (measured:
        HGB 1-row 5.3 ms with 2 threads against 2.0 ms with 1)."""
        return self.threads if self.threads is not None else 1

    def parsed_refs(self) -> list[ModelRef]:
        return [ModelRef.parse(r) for r in self.refs]
