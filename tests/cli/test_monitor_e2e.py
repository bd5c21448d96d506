"""The monitoring commands against a real ``modelport serve`` (a subprocess) that logged real
traffic with a drifted feature: the server's answers and the offline modes agree."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest
import skops.io
from sklearn.linear_model import LogisticRegression
from tests.cli.conftest import Cli
from tests.cli.test_monitor_commands import run

pytestmark = pytest.mark.e2e

BIN = Path(sys.executable).with_name("modelport")
FEATURES = ["a", "b", "c", "d"]
REQUESTS = 120


def _ready(url: str) -> bool:
    try:
        return httpx.get(f"{url}/v2/health/ready", timeout=2).status_code == 200
    except httpx.TransportError:
        return False


@pytest.fixture
def server(cli: Cli, tmp_path: Path) -> Iterator[str]:
    """``fraud:1`` (alias champion, profiled) served on a free port; its URL."""
    rng = np.random.default_rng(1)
    train = pd.DataFrame(rng.normal(size=(1000, 4)), columns=FEATURES)
    model = tmp_path / "lr.skops"
    skops.io.dump(LogisticRegression().fit(train, (train["a"] > 0).astype(int)), model)
    train.to_csv(tmp_path / "train.csv", index=False)
    cli(
        *("register", str(model), "--name", "fraud", "--alias", "champion"),
        *("--training-data", str(tmp_path / "train.csv"), "--yes", "--no-fast-path"),
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODELPORT_")}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    log = tmp_path / "serve.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [str(BIN), "--home", str(cli.home), "serve", "fraud@champion", "--port", "0"],
            stdout=subprocess.DEVNULL,
            stderr=out,
            env=env,
        )
    try:
        deadline, url = time.monotonic() + 90, None
        while url is None or not _ready(url):
            assert proc.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            found = re.search(r"http://127\.0\.0\.1:(\d+)", log.read_text())
            url = f"http://127.0.0.1:{found.group(1)}" if found else None
            time.sleep(0.1)
        yield url
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0, log.read_text()[-3000:]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def predict(url: str) -> None:
    """``REQUESTS`` one-row requests ``req-0``... with feature ``c`` shifted by 2."""
    rng = np.random.default_rng(5)
    with httpx.Client(base_url=url, timeout=10) as client:
        for i in range(REQUESTS):
            row = rng.normal(size=4) + np.array([0.0, 0.0, 2.0, 0.0])
            inputs = [
                {"name": n, "shape": [1], "datatype": "FP64", "data": [float(v)]}
                for n, v in zip(FEATURES, row, strict=True)
            ]
            answer = client.post(
                "/v2/models/fraud/infer",
                json={"inputs": inputs},
                headers={"X-Request-ID": f"req-{i}"},
            )
            assert answer.status_code == 200, answer.text


def test_monitoring_a_real_server(cli: Cli, server: str, tmp_path: Path) -> None:
    predict(server)

    status = cli.json("status", server)
    assert status["ready"] is True
    (version,) = status["versions"]
    assert (version["model"], version["version"], version["requests"]) == ("fraud", "1", REQUESTS)
    row = cli("status", server).splitlines()[2].split()
    assert row[:4] == ["fraud", "1", "ready", "100%"]

    deadline = time.monotonic() + 30  # the prediction log is written asynchronously
    while (report := cli.json("drift", server, "--model", "fraud"))["rows"] < REQUESTS:
        assert time.monotonic() < deadline, report
        time.sleep(0.1)
    verdicts = {f["feature"]: f["verdict"] for f in report["features"]}
    assert verdicts == {"a": "ok", "b": "ok", "c": "drift", "d": "ok"}
    rc, out, _ = run(cli, "drift", server, "--model", "fraud", "--version", "1", "--fail-on-drift")
    assert rc == 1
    assert "1 of 4 features drifted" in out

    offline = cli.json("drift", "fraud@champion")  # the same logged rows, read directly
    assert offline["rows"] == REQUESTS
    assert {f["feature"]: f["verdict"] for f in offline["features"]} == verdicts
    for ours, theirs in zip(offline["features"], report["features"], strict=True):
        assert ours["score"] == pytest.approx(theirs["score"])
        assert ours["p_value"] == pytest.approx(theirs["p_value"])

    labels = tmp_path / "labels.csv"
    labels.write_text("id,label\n" + "".join(f"req-{i},{i % 2}\n" for i in range(10)) + "x-1,1\n")
    rc, out, err = run(cli, "feedback", "fraud", "--file", str(labels), "--endpoint", server)
    assert rc == 3, err
    assert out.splitlines() == ["fraud: 10 of 11 labels stored", "unknown ids (1): x-1"]
    more = tmp_path / "more.csv"
    more.write_text("id,label\nreq-10,1\n")
    assert "1 of 1 labels stored" in cli("feedback", "fraud", "--file", str(more))  # offline

    assert cli.json("alerts", server, "--history") == {"firing": [], "history": []}
    assert cli("alerts", "--offline").strip() == "no firing alerts"
