"""Prometheus metric definitions of modelport, on a dedicated registry, built by a factory.

Nothing is created at import time: ``create_metrics()`` returns a fresh ``ServingMetrics`` whose
metrics live on their own ``CollectorRegistry`` (never the global default one), so several apps
in one process (tests) do not collide.

Several worker processes: prometheus_client's multiprocess mode. The parent sets
``PROMETHEUS_MULTIPROC_DIR`` to a fresh directory before it starts the workers
(``multiprocess_directory()``); each worker writes its values to files there; ``exposition()``
in any worker merges every worker's files (``MultiProcessCollector``), so a scrape that reaches
one worker still counts every request. prometheus_client chooses its storage when it is first
imported, from that variable; ``create_metrics`` refuses a directory it cannot honour.

Label scheme (``""`` means "not known": a request for a model that is not served, or that failed
before a version was chosen; it cannot collide with a model name, which is never empty)::

    requests_total, request_duration_seconds   endpoint, model, version, protocol, status_class
    requests_in_flight                         (none)
    queue_depth, model_ready                   model, version
    batch_size, model_load_seconds             model, version
    model_load_failures_total                  model, version
    prediction_log_dropped_total               model, version
    drift_score                                model, version, feature, statistic
    accuracy                                   model, version, window
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client import values as prometheus_values
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

from modelport.core.errors import ModelportError

__all__ = [
    "BATCH_SIZE_BUCKETS",
    "CONTENT_TYPE",
    "LATENCY_BUCKETS",
    "MULTIPROC_ENV",
    "PROTOCOLS",
    "REQUEST_LABELS",
    "STATUS_CLASSES",
    "ServingMetrics",
    "create_metrics",
    "multiprocess_directory",
    "worker_exited",
]

#: The variable prometheus_client reads (its contract, hence no ``MODELPORT_`` prefix).
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
#: Content type of ``ServingMetrics.exposition()`` (the Prometheus text format).
CONTENT_TYPE = CONTENT_TYPE_LATEST
#: Seconds; fine enough below 10 ms for millisecond models, up to slow ones.
LATENCY_BUCKETS: tuple[float, ...] = (
    0.0005, 0.001, 0.0015, 0.002, 0.003, 0.004, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03,
    0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip
#: Rows per batch.
BATCH_SIZE_BUCKETS: tuple[float, ...] = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
PROTOCOLS = ("v2_rest", "v2_grpc", "mlflow", "tfserving")
STATUS_CLASSES = ("2xx", "4xx", "5xx")
REQUEST_LABELS = ("endpoint", "model", "version", "protocol", "status_class")
_VERSION_LABELS = ("model", "version")
# Series whose children are cached (label sets are bounded: models and versions served here).
_MAX_CACHED = 4096
# How a gauge's per-worker values merge: live* modes forget workers that exited.
_GaugeMode = Literal["livesum", "livemin", "max", "mostrecent"]


@dataclass(frozen=True, eq=False)
class ServingMetrics:
    """Every metric of a serving process. ``registry`` holds them with one process; with
    several, ``registry`` holds only the collector that merges the workers' files."""

    registry: CollectorRegistry
    multiprocess_dir: Path | None
    requests: Counter
    request_duration: Histogram
    in_flight: Gauge
    queue_depth: Gauge
    batch_size: Histogram
    model_load_seconds: Gauge
    model_load_failures: Counter
    model_ready: Gauge
    prediction_log_dropped: Counter
    drift_score: Gauge
    accuracy: Gauge
    _children: dict[tuple[str, ...], tuple[Any, Any]] = field(default_factory=dict, repr=False)
    _batch_children: dict[tuple[str, str], Any] = field(default_factory=dict, repr=False)

    def observe_request(
        self,
        *,
        endpoint: str,
        model: str,
        version: str,
        protocol: str,
        status_class: str,
        seconds: float,
    ) -> None:
        """Count one finished prediction request and its duration."""
        labels = (endpoint, model, version, protocol, status_class)
        children = self._children.get(labels)
        if children is None:  # labels() validates and locks: look each series up once
            children = (self.requests.labels(*labels), self.request_duration.labels(*labels))
            if len(self._children) < _MAX_CACHED:
                self._children[labels] = children
        children[0].inc()
        children[1].observe(seconds)

    def observe_batch(self, model: str, version: str, rows: int) -> None:
        """Record the size of one batch a version ran."""
        child = self._batch_children.get((model, version))
        if child is None:
            child = self.batch_size.labels(model, version)
            if len(self._batch_children) < _MAX_CACHED:
                self._batch_children[(model, version)] = child
        child.observe(rows)

    def exposition(self) -> bytes:
        """The text exposition of every metric (of every worker, in multiprocess mode)."""
        return generate_latest(self.registry)


def _multiprocess_ready(path: Path) -> bool:
    return bool(getattr(prometheus_values.ValueClass, "_multiprocess", False)) and os.environ.get(
        MULTIPROC_ENV
    ) == str(path)


def create_metrics(multiprocess_dir: str | Path | None = None) -> ServingMetrics:
    """Fresh metric objects. ``multiprocess_dir``: the directory every worker of this server
    shares (``PROMETHEUS_MULTIPROC_DIR``, set before this process imported prometheus_client);
    None: plain in-process metrics."""
    path = Path(multiprocess_dir) if multiprocess_dir else None
    if path is not None:
        if not path.is_dir():
            raise ModelportError(
                f"metrics directory {str(path)!r} does not exist; {MULTIPROC_ENV} must name the "
                "directory the server created for its workers"
            )
        if not _multiprocess_ready(path):
            raise ModelportError(
                f"prometheus_client is not in multiprocess mode for {str(path)!r}: set "
                f"{MULTIPROC_ENV} before the worker process starts (modelport serve does)"
            )
    registry = CollectorRegistry(auto_describe=True)
    # multiprocess: values go to files; the registry merges the files of every worker
    target = None if path is not None else registry
    if path is not None:
        MultiProcessCollector(registry, path=str(path))  # type: ignore[no-untyped-call]

    def counter(name: str, doc: str, labels: tuple[str, ...]) -> Counter:
        return Counter(name, doc, labels, registry=target)

    def gauge(name: str, doc: str, labels: tuple[str, ...], mode: _GaugeMode) -> Gauge:
        return Gauge(name, doc, labels, registry=target, multiprocess_mode=mode)

    return ServingMetrics(
        registry=registry,
        multiprocess_dir=path,
        requests=counter(
            "modelport_requests_total",
            "Prediction requests answered, by endpoint, model, answering version, protocol and "
            "HTTP status class (gRPC codes mapped to the same classes).",
            REQUEST_LABELS,
        ),
        request_duration=Histogram(
            "modelport_request_duration_seconds",
            "Time from receiving a prediction request to sending its whole response.",
            REQUEST_LABELS,
            registry=target,
            buckets=LATENCY_BUCKETS,
        ),
        in_flight=gauge(
            "modelport_requests_in_flight",
            "Prediction requests being answered now (summed over live workers).",
            (),
            "livesum",
        ),
        queue_depth=gauge(
            "modelport_queue_depth",
            "Requests waiting in a version's batcher queue (summed over live workers).",
            _VERSION_LABELS,
            "livesum",
        ),
        batch_size=Histogram(
            "modelport_batch_size",
            "Rows per call of the model's predict (a batch of one or more requests).",
            _VERSION_LABELS,
            registry=target,
            buckets=BATCH_SIZE_BUCKETS,
        ),
        model_load_seconds=gauge(
            "modelport_model_load_seconds",
            "Seconds the last load of this version took (load, digest check, warm-up and smoke "
            "request); the slowest worker's with several.",
            _VERSION_LABELS,
            "max",
        ),
        model_load_failures=counter(
            "modelport_model_load_failures_total",
            "Loads of this version that failed (the version is isolated with its reason).",
            _VERSION_LABELS,
        ),
        model_ready=gauge(
            "modelport_model_ready",
            "1 when this version is ready to answer in every live worker, else 0.",
            _VERSION_LABELS,
            "livemin",
        ),
        prediction_log_dropped=counter(
            "modelport_prediction_log_dropped_total",
            "Prediction log records dropped because the bounded log writer could not keep up.",
            _VERSION_LABELS,
        ),
        drift_score=gauge(
            "modelport_drift_score",
            "Drift of a feature (or the prediction) against the reference profile, by statistic "
            "(psi, ks, chi2); the most recently computed value.",
            ("model", "version", "feature", "statistic"),
            "mostrecent",
        ),
        accuracy=gauge(
            "modelport_accuracy",
            "Accuracy (classification) of this version over a time window, from ground-truth "
            "feedback; the most recently computed value.",
            ("model", "version", "window"),
            "mostrecent",
        ),
    )


@contextmanager
def multiprocess_directory() -> Iterator[Path]:
    """A fresh ``PROMETHEUS_MULTIPROC_DIR`` for the workers this process will start: set in
    this process' environment (children inherit it) until exit, then removed with its files."""
    previous = os.environ.get(MULTIPROC_ENV)
    path = Path(tempfile.mkdtemp(prefix="modelport-metrics-"))
    os.environ[MULTIPROC_ENV] = str(path)
    try:
        yield path
    finally:
        if previous is None:
            os.environ.pop(MULTIPROC_ENV, None)
        else:
            os.environ[MULTIPROC_ENV] = previous
        shutil.rmtree(path, ignore_errors=True)


def worker_exited(pid: int, path: Path) -> None:
    """Forget the live gauges (in flight, queue depth, ready) of a worker that exited; its
    counters and histograms stay, so totals never go backwards."""
    mark_process_dead(pid, str(path))  # type: ignore[no-untyped-call]
