"""``/metrics`` of ``modelport serve --workers 2`` under real traffic: exact counts whichever worker
answers the scrape, and a real Prometheus server scraping it whose ``histogram_quantile`` agrees
with the exact p95 of the client-measured latencies of the same requests.

The Prometheus test needs the ``prometheus`` binary (Debian package ``prometheus``, installed by
``.ci/services``). Without it the test is skipped, except in CI (``CI=true``), where it fails.
"""

from __future__ import annotations

import math
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families
from tests.e2e.conftest import Server

from modelport.monitoring.metrics import LATENCY_BUCKETS

pytestmark = pytest.mark.e2e

INFER = "/v2/models/slow/infer"
SCRAPE_INTERVAL_S = 1.0


def _body(delay: float) -> dict[str, Any]:
    return {"inputs": [{"name": "delay", "datatype": "FP64", "shape": [1], "data": [delay]}]}


def _client() -> httpx.Client:
    """A new connection per request (each may reach either worker), with TCP_NODELAY: without
    it a delayed ACK can stall a request ~40 ms (MACHINE-NOTES.md)."""
    transport = httpx.HTTPTransport(
        socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)],
        limits=httpx.Limits(max_keepalive_connections=0),
    )
    return httpx.Client(transport=transport, timeout=30)


def _request_totals(url: str) -> tuple[Counter[str], float]:
    """(status class → count, duration count) from one scrape of ``/metrics``."""
    text = httpx.get(f"{url}/metrics", timeout=10).text  # a fresh connection: any worker
    by_class: Counter[str] = Counter()
    durations = 0.0
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == "modelport_requests_total":
                by_class[s.labels["status_class"]] += int(s.value)
            elif s.name == "modelport_request_duration_seconds_count":
                durations += s.value
    return by_class, durations


def _workers(server_tmp: Path) -> set[int]:
    """Pids of the live workers, from their in-flight gauge files in the metrics directory."""
    (metrics_dir,) = server_tmp.glob("modelport-metrics-*")
    return {int(f.stem.rsplit("_", 1)[1]) for f in metrics_dir.glob("gauge_livesum_*.db")}


def test_two_workers_count_every_request_whichever_answers_the_scrape(
    modelport_server: Server, server_tmp: Path
) -> None:
    n = 300
    with modelport_server("slow", "--workers", "2") as url:
        _poll(lambda: len(_workers(server_tmp)) == 2, "two workers")

        def one(_: int) -> int:
            # a fresh connection per request, so that both workers answer some
            return httpx.post(f"{url}{INFER}", json=_body(0.0), timeout=30).status_code

        with ThreadPoolExecutor(4) as pool:
            sent = Counter(f"{status // 100}xx" for status in pool.map(one, range(n)))
        assert sum(sent.values()) == n
        (metrics_dir,) = server_tmp.glob("modelport-metrics-*")
        assert len(list(metrics_dir.glob("counter_*.db"))) == 2, "both workers answered"
        for _ in range(12):  # each scrape may reach either worker: all see every request
            by_class, durations = _request_totals(url)
            assert by_class == sent
            assert durations == n
        # a worker that dies is replaced; its live gauges go, its counts stay
        victim = min(_workers(server_tmp))
        os.kill(victim, signal.SIGKILL)
        _poll(lambda: victim not in _workers(server_tmp), "the dead worker's gauges to go")
        _poll(lambda: len(_workers(server_tmp)) == 2, "the replacement worker", timeout=60)
        for _ in range(6):
            assert _request_totals(url) == (sent, n)
    assert not list(server_tmp.glob("modelport-metrics-*")), "metrics directory removed"


# --- a real Prometheus ------------------------------------------------------------------------


def _prometheus_binary() -> str:
    path = shutil.which("prometheus")
    if path is None:
        if os.environ.get("CI", "").lower() in ("true", "1", "yes"):
            pytest.fail("prometheus is not installed; .ci/services installs the Debian package")
        pytest.skip("prometheus is not installed (apt-get install prometheus, or .ci/services)")
    return path


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Prometheus:
    """A Prometheus server of our own, queried over its HTTP API."""

    def __init__(self, url: str) -> None:
        self.url = url

    def query(self, promql: str, at: float) -> list[dict[str, Any]]:
        answer = httpx.get(
            f"{self.url}/api/v1/query", params={"query": promql, "time": at}, timeout=10
        )
        body = answer.json()
        assert body["status"] == "success", body
        result: list[dict[str, Any]] = body["data"]["result"]
        return result

    def scalar(self, promql: str, at: float) -> float:
        result = self.query(promql, at)
        assert len(result) == 1, (promql, result)
        return float(result[0]["value"][1])

    def last_scrape(self) -> float:
        """Unix time of the latest scrape of the modelport target (0 before the first)."""
        targets = httpx.get(f"{self.url}/api/v1/targets", timeout=10).json()["data"]
        found = [t for t in targets["activeTargets"] if t["labels"]["job"] == "modelport"]
        if not found:  # service discovery has not handed the target over yet
            return 0.0
        (target,) = found
        stamp = target["lastScrape"]
        if stamp.startswith("0001-"):
            return 0.0
        assert target["health"] == "up", target["lastError"]
        return datetime.fromisoformat(stamp[:26].rstrip("Z") + "+00:00").timestamp()


@contextmanager
def prometheus(binary: str, target: str, workdir: Path) -> Iterator[Prometheus]:
    port = _free_port()
    config = workdir / "prometheus.yml"
    config.write_text(
        "global:\n"
        f"  scrape_interval: {SCRAPE_INTERVAL_S:g}s\n"
        f"  scrape_timeout: {SCRAPE_INTERVAL_S:g}s\n"
        "scrape_configs:\n"
        "  - job_name: modelport\n"
        "    metrics_path: /metrics\n"
        "    static_configs:\n"
        f"      - targets: ['{target}']\n"
    )
    log = workdir / "prometheus.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [
                binary,
                f"--config.file={config}",
                f"--storage.tsdb.path={workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, f"prometheus exited:\n{log.read_text()[-3000:]}"
            assert time.monotonic() < deadline, f"prometheus not ready:\n{log.read_text()[-3000:]}"
            try:
                if httpx.get(f"{url}/-/ready", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        yield Prometheus(url)
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def _poll(condition: Any, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def _drive(url: str, delays: np.ndarray, threads: int) -> list[tuple[int, float]]:
    """Send one request per delay from ``threads`` clients; (status, seconds) each, timed from
    before connecting to the end of reading the response."""
    results: list[tuple[int, float]] = [(0, 0.0)] * len(delays)

    def run(part: int) -> None:
        with _client() as client:
            for i in range(part, len(delays), threads):
                started = time.perf_counter()
                answer = client.post(f"{url}{INFER}", json=_body(float(delays[i])))
                results[i] = (answer.status_code, time.perf_counter() - started)

    workers = [threading.Thread(target=run, args=(p,)) for p in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(300)
    assert all(status for status, _ in results), "every request was sent"
    return results


def _bucket_width(value: float) -> float:
    """Width of the latency bucket holding ``value`` (the histogram's resolution there)."""
    lower = 0.0
    for upper in LATENCY_BUCKETS:
        if value <= upper:
            return upper - lower
        lower = upper
    return math.inf


def test_prometheus_p95_agrees_with_the_exact_p95_of_the_same_requests(
    modelport_server: Server, tmp_path: Path
) -> None:
    binary = _prometheus_binary()
    rng = np.random.default_rng(2024)
    n = 600
    # 80% fast (no sleep), 20% slow: a continuous 4-26 ms, so the p95 (~20 ms of sleep plus the
    # HTTP path) falls inside the 20-30 ms bucket, on a smooth part of the distribution
    delays = np.where(rng.random(n) < 0.8, 0.0, rng.uniform(0.004, 0.026, n))
    ok = 'model="slow",protocol="v2_rest",status_class="2xx"'
    bucket = f"modelport_request_duration_seconds_bucket{{{ok}}}"
    with (
        modelport_server("slow", "--workers", "2") as url,
        prometheus(binary, url.removeprefix("http://"), tmp_path) as prom,
    ):
        _poll(lambda: prom.last_scrape() > 0, "the first scrape")
        # warm-up: creates the series, and gives the window a sample from before the load
        warm = _drive(url, np.zeros(20), threads=1)  # both workers answer some
        assert {status for status, _ in warm} == {200}
        total = f"sum(modelport_requests_total{{{ok}}})"
        _poll(lambda: prom.query(total, time.time()) != [], "the warm-up to be scraped")
        _poll(lambda: prom.scalar(total, time.time()) == 20, "the warm-up to be scraped")
        seen = prom.last_scrape()
        _poll(lambda: prom.last_scrape() > seen, "one more scrape before the load")
        before = time.time()  # the scrapes just before this instant hold exactly the warm-up

        loaded = time.monotonic()
        # one request at a time: a request never waits behind another in a worker, so the
        # latencies are the model's own plus the HTTP path (no queueing-shaped clumps)
        load = _drive(url, delays, threads=1)
        load_s = time.monotonic() - loaded
        ended = time.time()
        scrapes: set[float] = set()

        def two_scrapes_after_the_load() -> bool:
            last = prom.last_scrape()
            if last > ended:
                scrapes.add(last)
            return len(scrapes) >= 2

        _poll(two_scrapes_after_the_load, "two scrapes after the load")
        at = time.time()

        # counts: exact
        assert {status for status, _ in load} == {200}
        assert prom.scalar(total, at) == 20 + n
        assert prom.scalar(f"sum(modelport_request_duration_seconds_count{{{ok}}})", at) == 20 + n
        window = f"sum by (le) ({bucket}) - sum by (le) ({bucket} @ {before:.3f})"
        count = f"modelport_request_duration_seconds_count{{{ok}}}"
        assert prom.scalar(f"sum({count}) - sum({count} @ {before:.3f})", at) == n

        # p95: over exactly the load's requests, and as an operator would ask (increase)
        exact = float(np.quantile([s for _, s in load], 0.95, method="inverted_cdf"))
        p95_window = prom.scalar(f"histogram_quantile(0.95, {window})", at)
        range_s = math.ceil(at - before)  # from the last scrape before the load
        p95_increase = prom.scalar(
            f"histogram_quantile(0.95, sum by (le) (increase({bucket}[{range_s}s])))", at
        )
        everything = [s for _, s in warm + load]
        exact_all = float(np.quantile(everything, 0.95, method="inverted_cdf"))
        p95_all = prom.scalar(f"histogram_quantile(0.95, sum by (le) ({bucket}))", at)
        server_mean = prom.scalar(
            f"sum(modelport_request_duration_seconds_sum{{{ok}}})"
            f" / sum(modelport_request_duration_seconds_count{{{ok}}})",
            at,
        )

    client_mean = float(np.mean(everything))
    overhead = client_mean - server_mean
    width = _bucket_width(exact)
    report = (
        f"{n} requests in {load_s:.2f}s; client p95 {exact * 1000:.2f} ms; Prometheus p95 over "
        f"the load window {p95_window * 1000:.2f} ms, by increase[{range_s}s] "
        f"{p95_increase * 1000:.2f} ms; lifetime: client {exact_all * 1000:.2f} ms, Prometheus "
        f"{p95_all * 1000:.2f} ms; bucket width {width * 1000:.1f} ms; mean client "
        f"{client_mean * 1000:.2f} ms vs server {server_mean * 1000:.2f} ms; errors "
        f"{(p95_window - exact) / exact:+.1%} (window), {(p95_increase - exact) / exact:+.1%} "
        f"(increase), {(p95_all - exact_all) / exact_all:+.1%} (lifetime); without the client's "
        f"offset {(p95_window - exact + overhead) / (exact - overhead):+.1%} (window)"
    )
    print(report)  # the figures, shown with -s
    # Tolerance. histogram_quantile interpolates linearly inside the bucket holding the quantile,
    # so it is within that bucket's width of the true p95 of the server-side durations; the
    # client's figures add its own HTTP time, measured as client mean - server mean (the server
    # mean is exact: _sum/_count). Guaranteed bound: one width of the bucket holding the exact
    # client p95, plus that offset. Expected agreement, once the offset is taken off the client
    # p95: 15% (linear interpolation over a smooth part of the distribution).
    assert 0 <= overhead < 0.005, report
    for estimate, truth in ((p95_window, exact), (p95_increase, exact), (p95_all, exact_all)):
        assert abs(estimate - truth) <= _bucket_width(truth) + overhead, report
        assert abs(estimate - (truth - overhead)) <= 0.15 * (truth - overhead), report
