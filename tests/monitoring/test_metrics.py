"""Metric definitions: a dedicated registry, valid text exposition, and multiprocess merging of
several real worker processes' values."""

from __future__ import annotations

import multiprocessing
import os
from pathlib import Path

import prometheus_client
import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families

from modelport.core.errors import ModelportError
from modelport.monitoring import metrics as metrics_module
from modelport.monitoring.metrics import (
    BATCH_SIZE_BUCKETS,
    LATENCY_BUCKETS,
    MULTIPROC_ENV,
    ServingMetrics,
    create_metrics,
    multiprocess_directory,
    worker_exited,
)

FAMILIES = {
    "modelport_requests": "counter",
    "modelport_request_duration_seconds": "histogram",
    "modelport_requests_in_flight": "gauge",
    "modelport_queue_depth": "gauge",
    "modelport_batch_size": "histogram",
    "modelport_model_load_seconds": "gauge",
    "modelport_model_load_failures": "counter",
    "modelport_model_ready": "gauge",
    "modelport_prediction_log_dropped": "counter",
    "modelport_drift_score": "gauge",
    "modelport_accuracy": "gauge",
}


def _exercise(metrics: ServingMetrics, requests: int, seconds: float, in_flight: int) -> None:
    """Touch every metric once (the same calls the server and other components make)."""
    for _ in range(requests):
        metrics.observe_request(
            endpoint="clf",
            model="clf",
            version="1",
            protocol="v2_rest",
            status_class="2xx",
            seconds=seconds,
        )
    metrics.observe_request(
        endpoint="", model="", version="", protocol="mlflow", status_class="4xx", seconds=0.0001
    )
    metrics.in_flight.set(in_flight)
    metrics.queue_depth.labels("clf", "1").set(in_flight * 2)
    metrics.batch_size.labels("clf", "1").observe(requests)
    metrics.model_load_seconds.labels("clf", "1").set(seconds * 100)
    metrics.model_load_failures.labels("bad", "3").inc()
    metrics.model_ready.labels("clf", "1").set(in_flight % 2)
    metrics.prediction_log_dropped.labels("clf", "1").inc(requests)
    metrics.drift_score.labels("clf", "1", "f0", "psi").set(seconds)
    metrics.accuracy.labels("clf", "1", "1h").set(0.9)


def _parse(text: str) -> dict[str, dict[tuple[str, tuple[tuple[str, str], ...]], float]]:
    families: dict[str, dict[tuple[str, tuple[tuple[str, str], ...]], float]] = {}
    for family in text_string_to_metric_families(text):
        samples = families.setdefault(f"{family.name}:{family.type}", {})
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return families


def test_public_names_are_sorted_and_exist() -> None:
    assert metrics_module.__all__ == sorted(metrics_module.__all__)
    for name in metrics_module.__all__:
        assert hasattr(metrics_module, name), name


def test_every_metric_is_on_its_own_registry_and_the_exposition_parses() -> None:
    first, second = create_metrics(), create_metrics()  # no duplicate-timeseries error
    assert first.registry is not second.registry
    _exercise(first, requests=3, seconds=0.004, in_flight=1)
    families = _parse(first.exposition().decode())
    assert {f"{name}:{typ}" for name, typ in FAMILIES.items()} <= set(families)
    # nothing went to the global default registry, and the second set is untouched
    default = prometheus_client.generate_latest(prometheus_client.REGISTRY).decode()
    assert "modelport_" not in default
    assert "modelport_requests_total{" not in second.exposition().decode()

    requests = families["modelport_requests:counter"]
    labels = (
        ("endpoint", "clf"),
        ("model", "clf"),
        ("protocol", "v2_rest"),
        ("status_class", "2xx"),
        ("version", "1"),
    )
    assert requests[("modelport_requests_total", labels)] == 3
    latency = families["modelport_request_duration_seconds:histogram"]
    buckets = {
        float(dict(lb)["le"]): v
        for (name, lb), v in latency.items()
        if name.endswith("_bucket") and dict(lb)["model"] == "clf"
    }
    assert sorted(buckets) == [*LATENCY_BUCKETS, float("inf")]
    assert buckets[0.003] == 0
    assert buckets[0.004] == 3  # le is inclusive
    batch = families["modelport_batch_size:histogram"]
    assert {float(dict(lb)["le"]) for (n, lb) in batch if n.endswith("_bucket")} == {
        *map(float, BATCH_SIZE_BUCKETS),
        float("inf"),
    }


def test_latency_buckets_resolve_milliseconds() -> None:
    assert list(LATENCY_BUCKETS) == sorted(LATENCY_BUCKETS)
    below_10ms = [b for b in LATENCY_BUCKETS if b <= 0.01]
    assert len(below_10ms) >= 8
    assert LATENCY_BUCKETS[0] <= 0.0005
    assert LATENCY_BUCKETS[-1] >= 10


# --- several processes ----------------------------------------------------------------------


def _worker(path: str, requests: int, seconds: float, in_flight: int) -> None:
    """Runs in a spawned process whose environment names the shared directory."""
    assert os.environ[MULTIPROC_ENV] == path
    _exercise(create_metrics(path), requests, seconds, in_flight)


LATENCY = "modelport_request_duration_seconds:histogram"
IN_FLIGHT = "modelport_requests_in_flight:gauge"
READY = "modelport_model_ready:gauge"


def _collect(path: Path) -> dict[str, dict[tuple[str, tuple[tuple[str, str], ...]], float]]:
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(path))
    return _parse(prometheus_client.generate_latest(registry).decode())


def test_values_of_several_processes_are_merged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(MULTIPROC_ENV, str(tmp_path))  # inherited by the spawned workers
    ctx = multiprocessing.get_context("spawn")
    procs = [
        ctx.Process(target=_worker, args=(str(tmp_path), 5, 0.002, 2)),
        ctx.Process(target=_worker, args=(str(tmp_path), 7, 0.02, 3)),
    ]
    for proc in procs:  # one after the other, so "most recent" is the second
        proc.start()
        proc.join(60)
        assert proc.exitcode == 0
    ok = (
        ("endpoint", "clf"),
        ("model", "clf"),
        ("protocol", "v2_rest"),
        ("status_class", "2xx"),
        ("version", "1"),
    )
    version = (("model", "clf"), ("version", "1"))

    def value(family: str, sample: str, labels: tuple[tuple[str, str], ...] = ()) -> float:
        return _collect(tmp_path)[family][(sample, labels)]

    def bucket(le: str) -> float:
        labels = tuple(sorted((*ok, ("le", le))))
        return value(LATENCY, "modelport_request_duration_seconds_bucket", labels)

    # counters and histograms: sums over every process
    assert value("modelport_requests:counter", "modelport_requests_total", ok) == 12
    assert value(LATENCY, "modelport_request_duration_seconds_count", ok) == 12
    assert bucket("0.002") == 5
    assert bucket("0.015") == 5
    assert bucket("0.02") == 12
    assert value(LATENCY, "modelport_request_duration_seconds_sum", ok) == pytest.approx(0.15)
    dropped = value(
        "modelport_prediction_log_dropped:counter",
        "modelport_prediction_log_dropped_total",
        version,
    )
    assert dropped == 12
    bad = (("model", "bad"), ("version", "3"))
    failures = "modelport_model_load_failures"
    assert value(f"{failures}:counter", f"{failures}_total", bad) == 2
    # gauges: merged as each one's mode says
    assert value(IN_FLIGHT, "modelport_requests_in_flight") == 5  # livesum
    assert value("modelport_queue_depth:gauge", "modelport_queue_depth", version) == 10
    assert value(READY, "modelport_model_ready", version) == 0  # livemin of 0 and 1
    load = value("modelport_model_load_seconds:gauge", "modelport_model_load_seconds", version)
    assert load == pytest.approx(2.0)  # max
    drift = (("feature", "f0"), ("model", "clf"), ("statistic", "psi"), ("version", "1"))
    assert value("modelport_drift_score:gauge", "modelport_drift_score", drift) == 0.02
    # a worker that exited no longer counts in live gauges; its counts stay
    worker_exited(procs[0].pid or 0, tmp_path)
    assert value(IN_FLIGHT, "modelport_requests_in_flight") == 3
    assert value(READY, "modelport_model_ready", version) == 1
    assert value("modelport_requests:counter", "modelport_requests_total", ok) == 12


def test_create_metrics_refuses_a_directory_it_cannot_honour(tmp_path: Path) -> None:
    with pytest.raises(ModelportError, match="does not exist"):
        create_metrics(tmp_path / "missing")
    # this process imported prometheus_client without the variable: values are not in files
    with pytest.raises(ModelportError, match="not in multiprocess mode"):
        create_metrics(tmp_path)


def test_multiprocess_directory_is_fresh_set_for_children_and_removed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(MULTIPROC_ENV, "/somewhere/else")
    with multiprocess_directory() as path:
        assert path.is_dir()
        assert not any(path.iterdir())
        assert os.environ[MULTIPROC_ENV] == str(path)
        (path / "counter_1.db").write_bytes(b"x")
    assert not path.exists()
    assert os.environ[MULTIPROC_ENV] == "/somewhere/else"
