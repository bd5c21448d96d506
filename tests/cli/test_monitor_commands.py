"""The monitoring commands against a server over real HTTP: status, drift, feedback, alerts, and
the endpoint client's errors and exit codes."""

from __future__ import annotations

import csv
import socket
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from tests.cli.conftest import Cli
from tests.cli.monitor_stub import ALERTS, DRIFT, STATUS, Seen, StubServer, serve_stub

from modelport.cli.endpoint import EndpointClient, Reply, check_endpoint
from modelport.cli.main import main
from modelport.cli.monitor_feedback import MAX_BODY_BYTES, chunked
from modelport.core.errors import (
    InvalidInputError,
    ModelportError,
    NotFoundError,
    StoreUnavailableError,
)
from modelport.monitoring.feedback import FeedbackItem, parse_feedback_csv


@pytest.fixture(autouse=True)
def _no_endpoint_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MODELPORT_ENDPOINT", raising=False)


@pytest.fixture
def stub() -> Iterator[StubServer]:
    yield from serve_stub()


def run(cli: Cli, *args: str) -> tuple[int, str, str]:
    """Exit code, stdout and stderr of ``modelport --home HOME ARGS``."""
    cli.capsys.readouterr()
    rc = main(["--home", str(cli.home), *args])
    out, err = cli.capsys.readouterr()
    return rc, out, err


def failed(cli: Cli, *args: str) -> str:
    """stderr of a command that must exit 1."""
    rc, out, err = run(cli, *args)
    assert rc == 1, (rc, out, err)
    return err


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- status ------------------------------------------------------------------------------------
def test_status_table(cli: Cli, stub: StubServer) -> None:
    out = cli("status", stub.url)
    lines = out.splitlines()
    assert lines[0].startswith(f"{stub.url}  ready: yes  window: 300s  at: 2026-03-01 12:00:00")
    assert lines[1].split() == [
        "MODEL",
        "VERSION",
        "STATE",
        "SHARE",
        "RPS",
        "P50",
        "P95",
        "P99",
        "ERRORS",
        "ACCURACY",
        "DRIFT",
    ]
    v3, v4, price = lines[2], lines[3], lines[4]
    assert v3.split()[:11] == [
        "fraud",
        "3",
        "serving",
        "90%",
        "18",
        "4.2",
        "12.5",
        "30.1",
        "1.23%",
        "0.912",
        "(n=532)",
    ]
    assert "drift: amount, merchant_category, count…" in v3  # truncated to 40 characters
    assert v4.split()[:9] == ["fraud", "4", "canary", "10%", "2", "3.9", "11", "1250", "0.00%"]
    assert v4.endswith("insufficient data")
    assert "MAE 1.25 (n=40)" in price
    assert price.split()[:9] == ["price", "1", "serving", "100%", "0", "-", "-", "-", "-"]
    assert "firing alerts (2):" in out
    alerts = out.split("firing alerts (2):\n")[1].splitlines()
    assert alerts[0].split() == ALERT_HEADER
    assert alerts[1].split()[:5] == ["fraud-p95", "critical", "fraud", "3", "-"]
    assert "0.61 (stale)" in alerts[2]
    assert "2026-03-01 11:00:00" in alerts[2]
    assert [(s.method, s.path) for s in stub.seen] == [("GET", "/v2/monitoring/status")]
    assert stub.seen[0].headers["accept"] == "application/json"


ALERT_HEADER = ["RULE", "SEVERITY", "MODEL", "VERSION", "FEATURE", "VALUE", "THRESHOLD", "SINCE"]


def test_status_json_is_the_servers_document(cli: Cli, stub: StubServer) -> None:
    assert cli.json("status", stub.url) == STATUS


def test_status_endpoint_from_the_environment_and_no_alerts(
    cli: Cli, stub: StubServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    quiet = {**STATUS, "alerts": [], "ready": False}
    stub.answer("GET", "/v2/monitoring/status", 200, quiet)
    monkeypatch.setenv("MODELPORT_ENDPOINT", stub.url + "/")
    out = cli("status")
    assert "ready: no" in out
    assert out.rstrip().endswith("no firing alerts")


def test_server_down_exits_6_naming_the_url_and_what_to_do(cli: Cli) -> None:
    url = f"http://127.0.0.1:{closed_port()}"
    err = cli("status", url, code=6)
    assert f"{url}/v2/monitoring/status" in err
    assert "connection refused" in err
    assert "modelport serve" in err
    assert "MODELPORT_ENDPOINT" in err


@pytest.mark.parametrize("bad", ["ftp://127.0.0.1/x", "127.0.0.1:8080", "http://", "file:///etc"])
def test_only_http_endpoints(cli: Cli, bad: str) -> None:
    assert "http(s) URL" in cli("status", bad, code=2)


def test_credentials_in_the_endpoint_are_refused(cli: Cli) -> None:
    assert "credentials" in cli("status", "http://u:secret@127.0.0.1:1", code=2)


def test_timeout_exits_6(cli: Cli, stub: StubServer) -> None:
    def hang(_seen: Seen) -> tuple[int, object, dict[str, str]]:
        stub.release.wait(30)
        return 200, STATUS, {}

    stub.routes[("GET", "/v2/monitoring/status")] = hang
    err = cli("status", stub.url, "--timeout", "0.3", code=6)
    assert "timed out" in err
    assert "--timeout" in err


def test_redirects_stay_on_the_same_host(cli: Cli, stub: StubServer, tmp_path: Path) -> None:
    stub.answer("GET", "/old/v2/monitoring/status", 307, {}, location="/v2/monitoring/status")
    assert cli.json("status", stub.url + "/old") == STATUS
    away = f"http://localhost:{stub.port}/v2/monitoring/status"
    stub.answer("GET", "/v2/monitoring/status", 302, {}, location=away)
    assert "redirected to another host" in failed(cli, "status", stub.url)
    assert [s.path for s in stub.seen].count("/v2/monitoring/status") == 2  # never followed
    stub.answer(
        "POST", "/old/v2/models/fraud/feedback", 302, {}, location="/v2/models/fraud/feedback"
    )
    labels = tmp_path / "labels.csv"
    labels.write_text("id,label\nr-1,1\n")
    args = ("feedback", "fraud", "--file", str(labels), "--endpoint", stub.url + "/old")
    assert "redirected a POST" in failed(cli, *args)
    assert stub.seen[-1].path == "/old/v2/models/fraud/feedback"


def test_http_errors_map_to_exit_codes(cli: Cli, stub: StubServer) -> None:
    stub.routes.clear()  # a server without the monitoring routes: Not Found, not JSON
    err = cli("status", stub.url, code=3)
    assert "not a modelport server, or one without this route" in err
    stub.answer(
        "GET", "/v2/monitoring/status", 503, {"error": "shutting down"}, **{"retry-after": "2"}
    )
    err = cli("status", stub.url, code=6)
    assert "HTTP 503: shutting down" in err
    assert "retry in 2 s" in err
    stub.answer("GET", "/v2/monitoring/status", 200, b"<html>hello</html>")
    assert "not JSON" in failed(cli, "status", stub.url)
    stub.answer("GET", "/v2/monitoring/status", 200, [1, 2])
    assert "did not answer a status document" in failed(cli, "status", stub.url)
    stub.answer("GET", "/v2/monitoring/status", 500, {"error": "request failed (error)"})
    assert "HTTP 500" in failed(cli, "status", stub.url)


def test_the_transport_is_a_seam() -> None:
    seen: list[urllib.request.Request] = []

    def transport(request: urllib.request.Request, timeout: float) -> Reply:
        seen.append(request)
        return Reply(413, {}, b'{"error": "request body is larger than 10 bytes"}')

    api = EndpointClient("https://models.example:8443/mp/", timeout=2, transport=transport)
    assert api.endpoint == "https://models.example:8443/mp"
    with pytest.raises(InvalidInputError, match=r"HTTP 413.*larger than 10 bytes"):
        api.post_json("/v2/models/m/feedback", [{"id": "a", "label": 1}])
    assert seen[0].full_url == "https://models.example:8443/mp/v2/models/m/feedback"
    assert seen[0].data == b'[{"id":"a","label":1}]'
    assert seen[0].get_header("Content-type") == "application/json"

    def answer(status: int, body: bytes) -> EndpointClient:
        return EndpointClient("http://h", transport=lambda r, t: Reply(status, {}, body))

    with pytest.raises(NotFoundError, match="model 'x' not found"):
        answer(404, b'{"error": "model \'x\' not found"}').get_json("/v2/models/x/drift")
    with pytest.raises(StoreUnavailableError, match="retry later"):
        answer(502, b"bad gateway").get_json("/")
    with pytest.raises(ModelportError, match="refused access"):
        answer(403, b"").get_json("/")
    assert answer(200, b'{"a": 1}').get_json("/", {"v": None, "w": 3}) == {"a": 1}
    with pytest.raises(InvalidInputError, match="more than 0 seconds"):
        EndpointClient("http://h", timeout=0)
    assert check_endpoint(" http://h:80/ ") == "http://h:80"


# -- drift -------------------------------------------------------------------------------------
def test_drift_from_the_server(cli: Cli, stub: StubServer) -> None:
    args = ("drift", stub.url, "--model", "fraud", "--version", "3", "--window", "600")
    out = cli(*args)
    lines = out.splitlines()
    assert lines[0] == "fraud:3 against its training profile: 800 rows from the last 600s"
    assert lines[1].split() == ["FEATURE", "KIND", "STATISTIC", "SCORE", "P-VALUE", "VERDICT"]
    assert lines[2].split() == ["amount", "numeric", "psi", "0.831", "1.2e-12", "drift"]
    assert lines[3].split() == ["age", "numeric", "psi", "0.012", "0.64", "ok"]
    assert lines[4].split() == ["country", "categorical", "psi", "-", "-", "insufficient", "data"]
    assert lines[5].split() == ["(prediction)", "categorical", "psi", "0.05", "0.2", "ok"]
    assert lines[6] == "1 of 3 features drifted (1 with insufficient data); predictions: ok"
    assert lines[7] == "  amount: PSI 0.831 >= 0.2 and KS p=1.2e-12 < 0.01"
    assert stub.seen[0].path == "/v2/models/fraud/drift"
    assert stub.seen[0].query == {"version": ["3"], "window_s": ["600"]}

    assert cli.json(*args) == DRIFT
    rc, out, _ = run(cli, *args, "--fail-on-drift")
    assert rc == 1
    assert "1 of 3 features drifted" in out
    assert cli("drift", stub.url, "--model", "fraud")  # version and window: the server's
    assert stub.seen[-1].query == {}


def test_drift_from_the_server_exit_codes(cli: Cli, stub: StubServer) -> None:
    quiet = {**DRIFT, "features": DRIFT["features"][1:]}
    stub.answer("GET", "/v2/models/fraud/drift", 200, quiet)
    assert "0 of 2 features drifted" in cli(
        "drift", stub.url, "--model", "fraud", "--fail-on-drift"
    )
    assert "--model NAME" in cli("drift", stub.url, code=2)
    assert "--data" in cli("drift", stub.url, "--model", "fraud", "--data", __file__, code=2)
    assert "model name" in cli("drift", stub.url, "--model", "../etc", code=2)
    stub.answer("GET", "/v2/models/nope/drift", 404, {"error": "model 'nope' is not served"})
    assert "model 'nope' is not served" in cli("drift", stub.url, "--model", "nope", code=3)
    assert "http(s) URL" in cli("drift", "grpc://127.0.0.1:1", code=2)


# -- feedback ----------------------------------------------------------------------------------
def labels_file(path: Path, rows: list[tuple[str, str]]) -> Path:
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["id", "label"])
        writer.writerows(rows)
    return path


def test_feedback_to_the_server_in_chunks(cli: Cli, stub: StubServer, tmp_path: Path) -> None:
    rows = [(f"r-{i}", str(i % 2)) for i in range(25_000)]
    rows[7] = ("r-7", "[1, 0, 1]")
    rows += [("x-1", "1"), ("x-2", "cat")]
    rows.append(("r-3", "5"))  # a later label for an id replaces the earlier one
    path = labels_file(tmp_path / "labels.csv", rows)
    rejected = tmp_path / "rejected.csv"
    args = ("feedback", "fraud", "--file", str(path), "--endpoint", stub.url)
    rc, out, err = run(cli, *args, "--rejected", str(rejected))
    assert rc == 3
    assert out.splitlines() == [
        "fraud: 25000 of 25002 labels stored",
        "unknown ids (2): x-1, x-2",
        f"their rows were written to {rejected}",
    ]
    assert "fraud: sent 10000/25002 labels" in err
    assert "2 of 25002 ids have no logged prediction of model 'fraud'" in err
    assert "x-1, x-2" in err
    assert f"send {rejected} again later" in err
    bodies = [s.json() for s in stub.seen]
    assert [len(b) for b in bodies] == [10_000, 10_000, 5_002]
    assert {s.path for s in stub.seen} == {"/v2/models/fraud/feedback"}
    assert bodies[0][3] == {"id": "r-3", "label": 5}
    assert bodies[0][7] == {"id": "r-7", "label": [1, 0, 1]}
    assert stub.seen[0].headers["content-type"] == "application/json"
    again = parse_feedback_csv(rejected.read_bytes())
    assert [(i.id, i.label) for i in again] == [("x-1", 1), ("x-2", "cat")]

    stub.seen.clear()
    result = cli.json(*args, "--allow-unknown", "--chunk-size", "9000")
    assert result == {
        "model": "fraud",
        "labels": 25002,
        "accepted": 25000,
        "unknown_ids": ["x-1", "x-2"],
    }
    assert [len(s.json()) for s in stub.seen] == [9000, 9000, 7002]
    assert "1<=x<=10000" in cli(*args, "--chunk-size", "20000", code=2)


def test_feedback_chunks_stay_under_the_body_limit() -> None:
    long = [FeedbackItem(f"r-{i}", "x" * 1000) for i in range(10_000)]  # ~10 MB of JSON
    chunks = chunked(long, 10_000, MAX_BODY_BYTES)
    assert [item for chunk in chunks for item in chunk] == long
    assert len(chunks) == 3
    for chunk in chunks:
        body = [{"id": i.id, "label": i.label} for i in chunk]
        assert len(orjson.dumps(body)) <= MAX_BODY_BYTES
    assert [len(c) for c in chunked(long[:5], 2)] == [2, 2, 1]
    assert chunked([], 3) == []


def test_feedback_to_the_server_errors(cli: Cli, stub: StubServer, tmp_path: Path) -> None:
    good = labels_file(tmp_path / "ok.csv", [(f"r-{i}", "1") for i in range(5)])
    assert "5 of 5 labels stored" in cli(
        "feedback", "fraud", "--file", str(good), "--endpoint", stub.url
    )
    url = f"http://127.0.0.1:{closed_port()}"
    assert "cannot reach" in cli(
        "feedback", "fraud", "--file", str(good), "--endpoint", url, code=6
    )
    bad = tmp_path / "bad.csv"
    bad.write_text("id,label\nr-1,1\nr-2\n")
    err = cli("feedback", "fraud", "--file", str(bad), "--endpoint", stub.url, code=2)
    assert "bad.csv line 3: expected 2 fields" in err
    both = ("--endpoint", stub.url, "--log-url", "sqlite:///x.db")
    assert "not both" in cli("feedback", "fraud", "--file", str(good), *both, code=2)
    calls = len(stub.seen)

    def fail_second(seen: Seen) -> tuple[int, object, dict[str, str]]:
        if len(stub.seen) > calls + 1:
            return 400, {"error": "feedback[0]: the label list is empty"}, {}
        return 200, {"accepted": len(seen.json()), "unknown_ids": []}, {}

    stub.routes[("POST", "/v2/models/fraud/feedback")] = fail_second
    args = ("feedback", "fraud", "--file", str(good), "--endpoint", stub.url, "--chunk-size", "2")
    err = cli(*args, code=2)
    assert "stopped after 2 of 5 labels (2 stored, 0 unknown)" in err
    assert "HTTP 400): feedback[0]: the label list is empty" in err


# -- alerts ------------------------------------------------------------------------------------
def test_alerts_from_the_server(cli: Cli, stub: StubServer) -> None:
    out = cli("alerts", stub.url)
    lines = out.splitlines()
    assert lines[0].split() == ALERT_HEADER
    assert lines[1].split() == [
        "fraud-p95",
        "critical",
        "fraud",
        "3",
        "-",
        "400",
        "ms",  # the kind gives the unit
        "250",
        "ms",
        "2026-03-01",
        "11:55:00",
    ]
    assert "history" not in out
    assert stub.seen[0].query == {"limit": ["50"]}

    out = cli("alerts", "list", stub.url, "--history", "--limit", "7")
    history = out.split("history (newest first):\n")[1].splitlines()
    assert history[0].split()[:4] == ["TIME", "STATUS", "RULE", "SEVERITY"]
    assert history[1].split()[:4] == ["2026-03-01", "11:55:01", "firing", "fraud-p95"]
    assert "400 ms" in history[1]  # the kind gives the unit
    assert history[2].split()[2:4] == ["resolved", "fraud-errors"]
    assert stub.seen[-1].query == {"limit": ["7"]}
    assert cli.json("alerts", stub.url) == ALERTS

    stub.answer("GET", "/v2/monitoring/alerts", 200, {"firing": [], "history": []})
    assert cli("alerts", stub.url).strip() == "no firing alerts"
    assert "cannot reach" in cli("alerts", f"http://127.0.0.1:{closed_port()}", code=6)
