"""Issue 4's "done means", end to end: a real ``modelport serve`` watching one model under a
synthetic traffic generator with injected errors, a drifted feature and delayed labels; every
figure the server reports (``/metrics``, ``modelport status``, ``modelport drift``, the alerts
and the webhook) checked against what this test itself sent and computed.

The model (``monitored_model.py``) is a fitted scikit-learn classifier shipped as a Python-class
version that fails every request carrying the marker ``fail=1``. The traffic:

- phase A: rows from the training distribution; phase B: the same with ``f1`` shifted by 3
  standard deviations; every 10th request of both carries the marker (a 5xx answer);
- delayed labels for a known subset (some of failed requests), by
  ``POST /v2/models/fraud/feedback`` and by ``modelport feedback --file``, with unknown ids;
- phase C: healthy, undrifted requests until the error-rate alert resolves.
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
import skops.io
from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression
from tests.cli.conftest import Cli
from tests.cli.test_monitor_commands import run
from tests.e2e.conftest import BIN, Server
from tests.e2e.monitored_model import ARTIFACT, FEATURES, FailingClassifier
from tests.e2e.test_prometheus import _client, _poll, _request_totals
from tests.serving.monitor_fixtures import Receiver, receiver, tensors
from tests.serving.test_monitor import metric, only_version

from modelport.api.registry import Registry
from modelport.core.settings import Settings
from modelport.core.signature import FieldSpec, Signature
from modelport.runtime.loaders import save_model

__all__ = ["receiver"]  # a fixture used here

pytestmark = pytest.mark.e2e

MODEL = "fraud"
SHIFTED = "f1"
UNSHIFTED = [f for f in FEATURES if f != SHIFTED]
PHASE = 250  # requests in phase A, and again in phase B
FAILING = 7  # request i carries the failure marker when i % 10 == FAILING
ACCOUNT = 4_000_000.271828  # + i: the redacted input, whose values must never be stored
ERRORS, DRIFT, ACCURACY, LATENCY = "fraud-errors", "fraud-drift", "fraud-accuracy", "fraud-p95"
FLOOR = 0.9  # of the accuracy rule
RULES = f"""\
rules:
  - {{name: {ERRORS}, kind: error_rate, model: {MODEL}, threshold: 0.05, window_s: 5,
     min_samples: 10, severity: critical}}
  - {{name: {DRIFT}, kind: drift, model: {MODEL}, statistic: psi, threshold: 0.2,
     window_s: 600, min_samples: 200}}
  - {{name: {ACCURACY}, kind: accuracy, model: {MODEL}, threshold: {FLOOR}, window_s: 600,
     min_samples: 50}}
  - {{name: {LATENCY}, kind: p95_latency, model: {MODEL}, threshold: 2.0, window_s: 600,
     min_samples: 10}}
"""


# -- the data and the registered model ---------------------------------------------------------
@dataclass(frozen=True)
class Data:
    train: pd.DataFrame
    train_labels: np.ndarray
    rows: np.ndarray  # traffic rows (the training distribution), and their true labels
    truth: np.ndarray


def _data() -> Data:
    x, y = make_classification(
        n_samples=2000,
        n_features=len(FEATURES),
        n_informative=3,
        n_redundant=0,
        n_clusters_per_class=1,
        random_state=4,
    )
    return Data(pd.DataFrame(x[:1000], columns=list(FEATURES)), y[:1000], x[1000:], y[1000:])


DATA = _data()


@pytest.fixture
def fraud_home(tmp_path: Path) -> Path:
    """A home holding ``fraud:1``: the ``FailingClassifier`` around a logistic regression, with
    the reference profile of its training frame. Inputs f0..f4, and two optional columns the
    classifier ignores: ``account`` (to redact) and ``fail`` (the failure marker)."""
    artifacts = tmp_path / "artifacts"
    artifacts.mkdir()
    skops.io.dump(LogisticRegression().fit(DATA.train, DATA.train_labels), artifacts / ARTIFACT)
    saved = tmp_path / "fraud-model"
    save_model(FailingClassifier(), saved, artifacts=artifacts)
    signature = Signature(
        kind="columns",
        inputs=(
            *(FieldSpec(f, "float64") for f in FEATURES),
            FieldSpec("account", "float64", optional=True),
            FieldSpec("fail", "int64", optional=True),
        ),
    )
    home = tmp_path / "home"
    with Registry.open(settings=Settings(home=home)) as registry:
        version = registry.register(
            saved,
            name=MODEL,
            input_example=DATA.train.head(3),
            training_data=DATA.train,
            signature=signature,
        )
    assert version.profile is not None
    assert [f.name for f in version.profile.features] == list(FEATURES)
    return home


@pytest.fixture
def slow_home(fraud_home: Path) -> Path:
    """The home ``modelport_server`` (tests/e2e/conftest.py) serves: here ``fraud_home``."""
    return fraud_home


@pytest.fixture
def cli(fraud_home: Path, capsys: pytest.CaptureFixture[str]) -> Cli:
    """The CLI in process, on the server's home."""
    return Cli(fraud_home, capsys)


# -- the traffic generator ---------------------------------------------------------------------
@dataclass(frozen=True)
class Request:
    rid: str
    row: np.ndarray
    truth: int
    fails: bool
    account: float


@dataclass(frozen=True)
class Answer:
    request: Request
    status: int
    predicted: int | None
    seconds: float  # as the client measured it, from sending to the end of the response


def _requests(
    prefix: str, first: int, last: int, *, errors: bool, shift: float = 0.0
) -> list[Request]:
    """Requests ``first..last-1`` of traffic rows (taken again from the first once all were
    used), ``shift`` added to ``SHIFTED``; with ``errors`` every 10th carries the failure
    marker."""
    out = []
    for i in range(first, last):
        row = DATA.rows[i % len(DATA.rows)].copy()
        row[FEATURES.index(SHIFTED)] += shift
        fails = errors and i % 10 == FAILING
        truth = int(DATA.truth[i % len(DATA.rows)])
        out.append(Request(f"{prefix}-{i:04d}", row, truth, fails, ACCOUNT + i))
    return out


def _body(request: Request) -> dict[str, Any]:
    columns: dict[str, list[Any]] = {
        f: [float(v)] for f, v in zip(FEATURES, request.row, strict=True)
    }
    columns["account"] = [request.account]
    if request.fails:
        columns["fail"] = [1]
    return tensors(**columns)


def _predict(client: httpx.Client, url: str, i: int, request: Request) -> Answer:
    body, headers = _body(request), {}
    if i % 2:  # a V2 body id names the prediction, and so does X-Request-ID
        body["id"] = request.rid
    else:
        headers["X-Request-ID"] = request.rid
    started = time.perf_counter()
    response = client.post(f"{url}/v2/models/{MODEL}/infer", json=body, headers=headers)
    seconds = time.perf_counter() - started
    assert response.headers["x-request-id"] == request.rid
    predicted = None
    if response.status_code == 200:
        (label,) = [o for o in response.json()["outputs"] if o["name"] == "label"]
        predicted = int(label["data"][0])
    return Answer(request, response.status_code, predicted, seconds)


def _drive(url: str, requests: Sequence[Request], threads: int = 2) -> list[Answer]:
    """Every request sent once, by ``threads`` clients at a time; the answers in order."""
    answers: list[Answer | None] = [None] * len(requests)

    def work(part: int) -> None:
        with _client() as client:
            for i in range(part, len(requests), threads):
                answers[i] = _predict(client, url, i, requests[i])

    workers = [threading.Thread(target=work, args=(p,)) for p in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
    done = [a for a in answers if a is not None]
    assert len(done) == len(requests), "every request was answered"
    return done


# -- reading the server ------------------------------------------------------------------------
def _modelport(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``modelport --home HOME ARGS`` in a subprocess, as a user runs it."""
    return subprocess.run(
        [str(BIN), "--home", str(home), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _notifications(received: Receiver) -> Counter[tuple[str, str, str | None]]:
    """(rule, status, feature) → how many times the webhook was told."""
    with received.lock:
        messages = list(received.messages)
    return Counter(
        (a["labels"]["alertname"], a["status"], a["labels"].get("feature"))
        for m in messages
        for a in m["alerts"]
    )


def _status(url: str) -> dict[str, Any]:
    answer = httpx.get(f"{url}/v2/monitoring/status", timeout=10)
    assert answer.status_code == 200, answer.text
    document: dict[str, Any] = answer.json()
    return document


def _until(what: str, read: Callable[[], Any], done: Callable[[Any], bool], timeout: float) -> Any:
    """``read()`` again until ``done`` holds for its value (shown when the time is up)."""
    deadline = time.monotonic() + timeout
    while not done(value := read()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}: {value!r}"
        time.sleep(0.1)
    return value


def _rows(table: str) -> dict[str, list[str]]:
    """The cells of each line of a CLI table, by its first cell."""
    return {line.split()[0]: line.split() for line in table.splitlines() if line.strip()}


def _exact_quantile(values: Sequence[float], q: float) -> float:
    return float(np.quantile(values, q, method="higher"))


# -- the steps of the scenario -----------------------------------------------------------------
def _send_labels(url: str, home: Path, answers: Sequence[Answer], tmp_path: Path) -> list[Answer]:
    """Ground truth for 3 requests in 4, half by the API, half by ``modelport feedback``, with
    unknown ids; the labeled requests that were answered (the ones accuracy counts)."""
    labeled = [a for i, a in enumerate(answers) if i % 4 != 0]
    by_api, by_cli = labeled[: len(labeled) // 2], labeled[len(labeled) // 2 :]
    ghosts = ["ghost-1", "ghost-2", "ghost-3"]
    items = [{"id": a.request.rid, "label": a.request.truth} for a in by_api]
    response = httpx.post(
        f"{url}/v2/models/{MODEL}/feedback",
        json=[*items, *({"id": g, "label": 1} for g in ghosts)],
        timeout=30,
    )
    assert response.status_code == 200, response.text
    # a failed request is logged too: its label is stored, but it never counts in accuracy
    assert response.json() == {"accepted": len(by_api), "unknown_ids": ghosts}
    labels = tmp_path / "labels.csv"
    rows = "".join(f"{a.request.rid},{a.request.truth}\n" for a in by_cli)
    labels.write_text(f"id,label\n{rows}ghost-4,0\nghost-5,1\n")
    fed = _modelport(home, "feedback", MODEL, "--file", str(labels), "--endpoint", url)
    assert fed.returncode == 3, fed  # documented: 3 (not found) when some ids are unknown
    assert fed.stdout.splitlines() == [
        f"{MODEL}: {len(by_cli)} of {len(by_cli) + 2} labels stored",
        "unknown ids (2): ghost-4, ghost-5",
    ]
    assert "ghost-4, ghost-5" in fed.stderr
    scored = [a for a in labeled if a.predicted is not None]
    assert 0 < len(scored) < len(labeled)
    return scored


def _check_metrics(url: str, n: int, failed: int, accuracy: float) -> dict[str, Any]:
    """``/metrics`` against the traffic sent and the accuracy computed; the PSI gauges."""
    by_class, durations = _request_totals(url)
    assert by_class == Counter({"2xx": n - failed, "5xx": failed})
    assert durations == n
    with httpx.Client(base_url=url, timeout=10) as scrape:
        series = {"model": MODEL, "version": "1", "protocol": "v2_rest"}
        ok = metric(scrape, "modelport_requests_total", status_class="2xx", **series)
        errors = metric(scrape, "modelport_requests_total", status_class="5xx", **series)
        gauges = {
            window: metric(scrape, "modelport_accuracy", model=MODEL, version="1", window=window)
            for window in ("600s", "3600s")  # the accuracy rule's window, and the server's
        }
        psi = {
            f: metric(scrape, "modelport_drift_score", model=MODEL, feature=f, statistic="psi")
            for f in FEATURES
        }
        dropped = metric(scrape, "modelport_prediction_log_dropped_total", model=MODEL)
    assert (ok, errors) == (n - failed, failed)
    assert gauges == dict.fromkeys(gauges, pytest.approx(accuracy, abs=1e-12))
    assert None not in psi.values(), psi
    assert psi[SHIFTED] > 0.2, psi  # the drift rule's threshold
    assert all(psi[f] < 0.2 for f in UNSHIFTED), psi
    assert not dropped, "the prediction log kept every record"
    return psi


def _check_status(
    cli: Cli,
    url: str,
    answers: Sequence[Answer],
    scored: Sequence[Answer],
    accuracy: float,
    psi: dict[str, Any],
) -> set[tuple[str, str | None]]:
    """``modelport status --json`` and its table; the firing (rule, feature)s."""
    n, failed = len(answers), sum(a.request.fails for a in answers)
    status = cli.json("status", url)
    version = only_version(status, MODEL)
    assert (version["version"], version["state"], version["traffic_share"]) == ("1", "ready", 1)
    assert version["requests"] == n
    assert version["error_rate"] == pytest.approx(failed / n, abs=1e-12)
    assert version["rate_per_s"] > 0
    p50, p95, p99 = version["p50_ms"], version["p95_ms"], version["p99_ms"]
    assert 0 < p50 <= p95 <= p99
    # the server times each request within the client's time for it, and its quantiles are
    # within 5% of the exact ones: never above the client's by more than that
    client_s = [a.seconds for a in answers]
    for q, figure in ((0.5, p50), (0.95, p95), (0.99, p99)):
        assert figure <= 1.05 * 1000 * _exact_quantile(client_s, q), (q, figure)
    assert version["accuracy"]["value"] == pytest.approx(accuracy, abs=1e-12)
    assert version["accuracy"]["labeled"] == len(scored)
    assert version["accuracy"]["task"] == "classification"
    assert version["drift"]["verdict"] == "drift"
    assert SHIFTED in version["drift"]["drifted"]
    assert not set(UNSHIFTED) & set(version["drift"]["drifted"])
    alerts = {(a["rule"], a["feature"]): a for a in status["alerts"]}
    assert {(ERRORS, None), (DRIFT, SHIFTED), (ACCURACY, None)} <= set(alerts)
    assert not {(DRIFT, f) for f in UNSHIFTED} & set(alerts)
    assert LATENCY not in {rule for rule, _ in alerts}
    assert alerts[(ACCURACY, None)]["value"] == pytest.approx(accuracy, abs=1e-12)
    assert alerts[(DRIFT, SHIFTED)]["value"] == pytest.approx(psi[SHIFTED], rel=1e-9)

    table = cli("status", url)
    row = _rows(table)[MODEL]
    assert row[:4] == [MODEL, "1", "ready", "100%"]
    assert row[8:] == [
        f"{100 * failed / n:.2f}%",
        f"{accuracy:.3f}",
        f"(n={len(scored)})",
        "drift:",
        SHIFTED,
    ]
    shown = _rows(table.split(f"firing alerts ({len(alerts)}):\n")[1])
    assert {rule for rule, _ in alerts} | {"RULE"} == set(shown)
    return set(alerts)


def _check_drift(cli: Cli, url: str, n: int, psi: dict[str, Any]) -> None:
    """``modelport drift`` asking the server, and offline on the same log."""
    report = cli.json("drift", url, "--model", MODEL)
    assert report["rows"] == n  # failed requests are logged with their inputs
    verdicts = {f["feature"]: f["verdict"] for f in report["features"]}
    assert verdicts == {f: "drift" if f == SHIFTED else "ok" for f in FEATURES}
    scores = {f["feature"]: f["score"] for f in report["features"]}
    assert scores == pytest.approx(psi, rel=1e-9)  # the gauges' window holds the same rows
    rc, out, _ = run(cli, "drift", url, "--model", MODEL)
    assert rc == 0
    drawn = _rows(out)
    assert {f: drawn[f][-1] for f in FEATURES} == verdicts
    assert f"1 of {len(FEATURES)} features drifted" in out

    offline = _modelport(cli.home, "drift", f"{MODEL}:1", "--json")
    assert offline.returncode == 0, offline.stderr
    mine = json.loads(offline.stdout)
    assert mine["rows"] == n
    assert {f["feature"]: f["verdict"] for f in mine["features"]} == verdicts
    assert {f["feature"]: f["score"] for f in mine["features"]} == pytest.approx(scores)


# -- the scenario ------------------------------------------------------------------------------
def test_every_monitoring_figure_under_synthetic_traffic(
    modelport_server: Server, receiver: Receiver, cli: Cli, tmp_path: Path
) -> None:
    started = time.monotonic()
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    shift = 3 * float(DATA.train[SHIFTED].std())
    options = [
        *("--alert-rules", str(rules), "--evaluate-interval", "1", "--redact", "account"),
        *("--webhook", receiver.url, "--webhook-allow-host", "127.0.0.1"),
    ]
    with modelport_server(MODEL, *options) as url:
        # phases A and B
        answers = _drive(url, _requests("a", 0, PHASE, errors=True))
        answers += _drive(url, _requests("b", PHASE, 2 * PHASE, errors=True, shift=shift))
        n, failed = len(answers), sum(a.request.fails for a in answers)
        assert failed == n // 10
        assert {a.status for a in answers if a.request.fails} == {500}
        assert {a.status for a in answers if not a.request.fails} == {200}

        # delayed labels; the accuracy the server should find
        scored = _send_labels(url, cli.home, answers, tmp_path)
        accuracy = sum(a.predicted == a.request.truth for a in scored) / len(scored)
        assert accuracy < FLOOR, "the accuracy rule must fire"
        _until(
            "an evaluation with every label",
            lambda: _status(url),
            lambda s: (only_version(s, MODEL)["accuracy"] or {}).get("labeled") == len(scored),
            timeout=15,
        )

        psi = _check_metrics(url, n, failed, accuracy)
        firing = _check_status(cli, url, answers, scored, accuracy, psi)
        _check_drift(cli, url, n, psi)

        # the alerts: notified, and listed by modelport alerts
        wanted = {(ERRORS, "firing", None), (DRIFT, "firing", SHIFTED), (ACCURACY, "firing", None)}
        _poll(lambda: wanted <= set(_notifications(receiver)), "the firing notifications")
        listed = cli.json("alerts", url)
        assert {(a["rule"], a["feature"]) for a in listed["firing"]} == firing

        # phase C: healthy, undrifted traffic until the error-rate alert resolves
        more: list[Answer] = []
        phase_c = time.monotonic()
        deadline = phase_c + 30
        while (ERRORS, "resolved", None) not in _notifications(receiver):
            assert time.monotonic() < deadline, (len(more), _notifications(receiver))
            first = 2 * PHASE + len(more)
            more += _drive(url, _requests("c", first, first + 10, errors=False), threads=1)
        phase_c = time.monotonic() - phase_c
        assert {a.status for a in more} == {200}
        total = n + len(more)
        after = only_version(_status(url), MODEL)
        assert (after["requests"], after["error_rate"]) == (total, pytest.approx(failed / total))
        assert _request_totals(url) == (Counter({"2xx": total - failed, "5xx": failed}), total)
        history = cli.json("alerts", url, "--history")
        still = {(a["rule"], a["feature"]) for a in history["firing"]}
        assert still == firing - {(ERRORS, None)}
        transitions = Counter((h["rule"], h["status"], h["feature"]) for h in history["history"])
        assert transitions == Counter(
            [(ERRORS, "firing", None), (ERRORS, "resolved", None)]
            + [(rule, "firing", feature) for rule, feature in still]
        )

    # after a clean shutdown: what the webhook was told, what the database holds
    assert _notifications(receiver) == transitions  # once each: de-duplicated
    stored = b"".join(p.read_bytes() for p in cli.home.glob("monitoring.db*"))
    assert b"[redacted]" in stored
    for answer in answers[:20]:  # the other inputs are logged as sent...
        assert repr(float(answer.request.row[0])).encode() in stored
    for answer in answers + more:  # ...the redacted one never
        assert repr(answer.request.account).encode() not in stored
    print(
        f"{n} + {len(more)} requests (phase C {phase_c:.1f}s), "
        f"scenario in {time.monotonic() - started:.1f}s"
    )


# -- regressions found by this scenario ------------------------------------------------------
def test_a_redacted_feature_is_not_reported_as_drifted(modelport_server: Server, cli: Cli) -> None:
    redacted = UNSHIFTED[-1]
    with modelport_server(MODEL, "--redact", redacted) as url:
        _drive(url, _requests("r", 0, 60, errors=False))
        report = cli.json("drift", url, "--model", MODEL)
    verdicts = {f["feature"]: f["verdict"] for f in report["features"]}
    assert verdicts[redacted] == "insufficient data", report


def test_prediction_drift_even_when_the_first_evaluation_precedes_the_model_load(
    modelport_server: Server, cli: Cli
) -> None:
    # evaluations every 0.2 s: the first ones run while the model loads (about a second)
    with modelport_server(MODEL, "--evaluate-interval", "0.2") as url:
        _drive(url, _requests("p", 0, 60, errors=False))
        report = cli.json("drift", url, "--model", MODEL)
    assert report["prediction"] is not None, report
